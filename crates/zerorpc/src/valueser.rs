//! Serializes any `Serialize` into a msgpack [`Value`] the way the Python
//! and Node peers expect: a struct becomes a map keyed by its field names
//! (a Python `dict`, a JavaScript object), not the positional array
//! `rmpv::ext::to_value` makes of it (which a Python user receives as
//! `['kiwi', 1.0]`).
//!
//! Everything else is encoded as `rmpv::ext::to_value` does, so that
//! `rmpv::ext::from_value` reads it back: tuple structs and sequences are
//! arrays, newtype structs are transparent, unit structs are `[]`, enum
//! variants are `[index, [fields...]]` (a struct variant's fields as a
//! map, which `from_value` also reads), `Value::Ext` stays an extension.
//! `from_value` accepts a struct as a map or as an array, so values from
//! older peers still decode.

use rmpv::ext::Error;
use rmpv::Value;
use serde::ser::{self, Serialize};

/// Serializes `v`, structs as maps.
pub(crate) fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
    v.serialize(Named)
}

/// The serializer (a unit: it carries no state).
struct Named;

/// Sequences, tuples and tuple structs.
struct Seq(Vec<Value>);

/// A tuple variant: `[index, [fields...]]`.
struct TupleVariant(u32, Vec<Value>);

/// Maps; `key` holds a key until its value comes.
struct Map {
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
}

/// A struct (its fields by name), or a struct variant (`Some(index)`).
struct Struct(Option<u32>, Vec<(Value, Value)>);

impl ser::Serializer for Named {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = TupleVariant;
    type SerializeMap = Map;
    type SerializeStruct = Struct;
    type SerializeStructVariant = Struct;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Boolean(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(Value::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::from(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(Value::Binary(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        // What `from_value` expects of a unit struct.
        Ok(Value::Array(Vec::new()))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::Array(vec![
            Value::from(index),
            Value::Array(Vec::new()),
        ]))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        if name == rmpv::MSGPACK_EXT_STRUCT_NAME {
            // `Value::Ext` (and serde's ext wrappers): rmpv knows the shape.
            return rmpv::ext::to_value(ExtRef(v));
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        Ok(Value::Array(vec![
            Value::from(index),
            Value::Array(vec![to_value(v)?]),
        ]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<TupleVariant, Error> {
        Ok(TupleVariant(index, Vec::with_capacity(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Map, Error> {
        Ok(Map {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Struct, Error> {
        Ok(Struct(None, Vec::with_capacity(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Struct, Error> {
        Ok(Struct(Some(index), Vec::with_capacity(len)))
    }
}

/// Forwards an ext payload to rmpv's own serializer under the name it
/// recognises.
struct ExtRef<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for ExtRef<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(rmpv::MSGPACK_EXT_STRUCT_NAME, self.0)
    }
}

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.0.push(to_value(v)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for TupleVariant {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.1.push(to_value(v)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(vec![
            Value::from(self.0),
            Value::Array(self.1),
        ]))
    }
}

impl ser::SerializeMap for Map {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.key = Some(to_value(k)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let k = self
            .key
            .take()
            .ok_or_else(|| <Error as ser::Error>::custom("map value without a key"))?;
        self.entries.push((k, to_value(v)?));
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Map(self.entries))
    }
}

impl Struct {
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        self.1.push((Value::from(key), to_value(v)?));
        Ok(())
    }
    fn finish(self) -> Value {
        match self.0 {
            None => Value::Map(self.1),
            Some(index) => Value::Array(vec![Value::from(index), Value::Map(self.1)]),
        }
    }
}

impl ser::SerializeStruct for Struct {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.field(key, v)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Struct {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.field(key, v)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Fruit {
        name: String,
        weight: f64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Basket {
        owner: Option<String>,
        fruits: Vec<Fruit>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        note: Option<String>,
        tags: std::collections::BTreeMap<String, Fruit>,
        pair: (Fruit, u8),
        wrapped: Wrapper,
        unit: Unit,
        kind: Kind,
        kinds: Vec<Kind>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Wrapper(Fruit);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Plain,
        One(Fruit),
        Two(Fruit, u8),
        Named { fruit: Fruit, count: u8 },
    }

    fn kiwi() -> Fruit {
        Fruit {
            name: "kiwi".into(),
            weight: 1.0,
        }
    }

    fn fields(v: &Value) -> Vec<&str> {
        v.as_map()
            .unwrap_or_else(|| panic!("a map, not {v}"))
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect()
    }

    #[test]
    fn structs_are_maps_keyed_by_field_name() {
        let v = to_value(&kiwi()).unwrap();
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("name"), Value::from("kiwi")),
                (Value::from("weight"), Value::from(1.0)),
            ])
        );
    }

    #[test]
    fn nested_structs_are_maps_and_everything_round_trips_through_from_value() {
        let b = Basket {
            owner: Some("ann".into()),
            fruits: vec![kiwi(), kiwi()],
            note: None,
            tags: [("k".to_string(), kiwi())].into_iter().collect(),
            pair: (kiwi(), 2),
            wrapped: Wrapper(kiwi()),
            unit: Unit,
            kind: Kind::Named {
                fruit: kiwi(),
                count: 3,
            },
            kinds: vec![
                Kind::Plain,
                Kind::One(kiwi()),
                Kind::Two(kiwi(), 1),
                Kind::Named {
                    fruit: kiwi(),
                    count: 3,
                },
            ],
        };
        let v = to_value(&b).unwrap();
        assert_eq!(
            fields(&v),
            ["owner", "fruits", "tags", "pair", "wrapped", "unit", "kind", "kinds"],
            "a skipped field is simply absent"
        );
        let get = |k: &str| {
            v.as_map()
                .unwrap()
                .iter()
                .find(|(kk, _)| kk.as_str() == Some(k))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(
            fields(&get("fruits").as_array().unwrap()[1]),
            ["name", "weight"]
        );
        assert_eq!(
            fields(&get("wrapped")),
            ["name", "weight"],
            "newtype: transparent"
        );
        assert_eq!(
            fields(&get("pair").as_array().unwrap()[0]),
            ["name", "weight"]
        );
        assert_eq!(
            fields(&get("tags").as_map().unwrap()[0].1),
            ["name", "weight"]
        );
        let back: Basket = rmpv::ext::from_value(v).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn a_struct_is_read_from_a_map_or_an_array() {
        let from_map: Fruit = rmpv::ext::from_value(to_value(&kiwi()).unwrap()).unwrap();
        let from_array: Fruit =
            rmpv::ext::from_value(rmpv::ext::to_value(kiwi()).unwrap()).unwrap();
        assert_eq!(from_map, kiwi());
        assert_eq!(from_array, kiwi());
    }

    #[test]
    fn values_pass_through_unchanged() {
        let v = Value::Array(vec![
            Value::Nil,
            Value::from(true),
            Value::from(-5),
            Value::from(u64::MAX),
            Value::F32(0.5),
            Value::from(2.5),
            Value::from("s"),
            Value::Binary(vec![0, 255]),
            Value::Ext(7, vec![1, 2, 3]),
            Value::Map(vec![(Value::from(1), Value::Array(vec![]))]),
        ]);
        assert_eq!(to_value(&v).unwrap(), v);
        assert_eq!(to_value(&()).unwrap(), Value::Nil);
        assert_eq!(to_value(&'é').unwrap(), Value::from("é"));
    }
}
