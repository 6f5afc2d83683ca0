//! Stream groupings, sans-IO: which of a subscriber's tasks get a tuple.
//!
//! The runner builds one [`Route`] per (emitting component, stream) from
//! the topology's subscriptions; an emitting task owns its copy (shuffle
//! state is per emitter, as in Storm) and asks it for the destination tasks
//! of every emit.

use std::hash::Hasher;

use crate::error::Error;
use crate::topology::Grouping;
use crate::tuple::{TaskId, Value};

/// One subscription, compiled: the subscriber's task indices (runner-wide
/// indices, not Storm task ids) and how to choose among them.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// Its tasks, as runner indices, in task-id order.
    pub(crate) tasks: Vec<usize>,
    /// Their Storm task ids, in the same order.
    pub(crate) task_ids: Vec<TaskId>,
    pub(crate) choice: Choice,
}

/// A grouping compiled against the stream's fields.
#[derive(Debug, Clone)]
pub(crate) enum Choice {
    /// Round robin from a random start (Storm shuffles a list and walks it:
    /// the same evenness).
    Shuffle {
        next: usize,
    },
    /// Hash of these field positions.
    Fields(Vec<usize>),
    All,
    Global,
    Direct,
}

impl Subscription {
    /// Compiles `grouping` for a stream with `fields`.
    pub(crate) fn new(
        component: &str,
        tasks: Vec<usize>,
        task_ids: Vec<TaskId>,
        grouping: &Grouping,
        fields: &[String],
        seed: usize,
    ) -> Result<Subscription, Error> {
        let choice = match grouping {
            Grouping::Shuffle | Grouping::LocalOrShuffle | Grouping::None => Choice::Shuffle {
                next: seed % tasks.len().max(1),
            },
            Grouping::Fields(names) => {
                let mut idx = Vec::with_capacity(names.len());
                for n in names {
                    let i = fields.iter().position(|f| f == n).ok_or_else(|| {
                        Error::Topology(format!(
                            "{component}: fields grouping on {n:?}, but the stream declares {fields:?}"
                        ))
                    })?;
                    idx.push(i);
                }
                if idx.is_empty() {
                    return Err(Error::Topology(format!(
                        "{component}: a fields grouping needs at least one field"
                    )));
                }
                Choice::Fields(idx)
            }
            Grouping::All => Choice::All,
            Grouping::Global => Choice::Global,
            Grouping::Direct => Choice::Direct,
        };
        Ok(Subscription {
            tasks,
            task_ids,
            choice,
        })
    }

    /// Appends the destination positions (into `tasks`) of a tuple with
    /// `values` emitted without a direct task.
    pub(crate) fn choose(&mut self, values: &[Value], out: &mut Vec<usize>) {
        let n = self.tasks.len();
        if n == 0 {
            return;
        }
        match &mut self.choice {
            Choice::Shuffle { next } => {
                out.push(*next);
                *next = if *next + 1 == n { 0 } else { *next + 1 };
            }
            Choice::Fields(idx) => {
                let mut h = FnvHasher::default();
                for &i in idx.iter() {
                    match values.get(i) {
                        Some(v) => hash_value(v, &mut h),
                        None => h.write_u8(0),
                    }
                }
                out.push((h.finish() % n as u64) as usize);
            }
            Choice::All => out.extend(0..n),
            Choice::Global => out.push(0),
            // Direct subscriptions receive only direct emits.
            Choice::Direct => {}
        }
    }
}

/// FNV-1a: fast on the short keys fields groupings hash, and stable across
/// runs and platforms (a word always lands on the same task).
pub(crate) struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        // FNV's low bits are weak for small moduli: mix once.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Hashes a JSON value by content (equal values, equal hashes; `1` and
/// `1.0` are different values).
pub(crate) fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            h.write_u8(*b as u8)
        }
        Value::Number(n) => {
            h.write_u8(2);
            if let Some(i) = n.as_i64() {
                h.write(&i.to_le_bytes())
            } else if let Some(u) = n.as_u64() {
                h.write(&u.to_le_bytes())
            } else if let Some(f) = n.as_f64() {
                h.write_u8(3);
                h.write(&f.to_bits().to_le_bytes())
            }
        }
        Value::String(s) => {
            h.write_u8(4);
            h.write(s.as_bytes());
            h.write_u8(0xff);
        }
        Value::Array(a) => {
            h.write_u8(5);
            for x in a {
                hash_value(x, h);
            }
            h.write_u8(0xfe);
        }
        Value::Object(m) => {
            h.write_u8(6);
            for (k, x) in m {
                h.write(k.as_bytes());
                h.write_u8(0xff);
                hash_value(x, h);
            }
            h.write_u8(0xfd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(grouping: Grouping, n: usize) -> Subscription {
        let fields = vec!["word".to_string(), "n".to_string()];
        Subscription::new(
            "count",
            (10..10 + n).collect(),
            (1..=n as i32).collect(),
            &grouping,
            &fields,
            0,
        )
        .unwrap()
    }

    fn pick(s: &mut Subscription, values: &[Value]) -> Vec<usize> {
        let mut out = Vec::new();
        s.choose(values, &mut out);
        out
    }

    #[test]
    fn shuffle_spreads_evenly() {
        let mut s = sub(Grouping::Shuffle, 3);
        let mut counts = [0; 3];
        for _ in 0..300 {
            for i in pick(&mut s, &[json!("a"), json!(1)]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn fields_sends_equal_values_to_one_task_and_spreads_distinct_ones() {
        let mut s = sub(Grouping::Fields(vec!["word".into()]), 4);
        let a = pick(&mut s, &[json!("apple"), json!(1)]);
        for n in 0..50 {
            assert_eq!(pick(&mut s, &[json!("apple"), json!(n)]), a);
        }
        let mut used = std::collections::BTreeSet::new();
        for i in 0..200 {
            used.extend(pick(&mut s, &[json!(format!("w{i}")), json!(0)]));
        }
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn fields_on_an_undeclared_field_is_a_topology_error() {
        let err = Subscription::new(
            "count",
            vec![0],
            vec![1],
            &Grouping::Fields(vec!["nope".into()]),
            &["word".to_string()],
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn all_global_and_direct() {
        assert_eq!(pick(&mut sub(Grouping::All, 3), &[]), vec![0, 1, 2]);
        assert_eq!(pick(&mut sub(Grouping::Global, 3), &[]), vec![0]);
        assert!(pick(&mut sub(Grouping::Direct, 3), &[]).is_empty());
    }

    #[test]
    fn value_hashes_follow_content() {
        let h = |v: &Value| {
            let mut h = FnvHasher::default();
            hash_value(v, &mut h);
            h.finish()
        };
        assert_eq!(h(&json!({"a": [1, "x"]})), h(&json!({"a": [1, "x"]})));
        assert_ne!(h(&json!(["ab", "c"])), h(&json!(["a", "bc"])));
        assert_ne!(h(&json!(1)), h(&json!(1.0)));
    }
}
