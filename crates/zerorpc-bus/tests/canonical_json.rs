//! Our canonical JSON against the real thing: thousands of arbitrary JSON
//! values (any Unicode, control characters, astral characters, floats over
//! the whole range with subnormals, integers over i64/u64) go to fedmsg's
//! Python in one batch; `fedmsg.encoding.dumps` and plain `json.dumps` of
//! each must equal ours byte for byte.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Number, Value};
use zerorpc_bus::json::{to_canonical, to_python_default};

/// Reads JSON lines from stdin; prints `fedmsg.encoding.dumps` and
/// `json.dumps` of each, tab-separated (both are ASCII with escaped tabs).
const PY_DUMPS: &str = r#"
import json, sys
import fedmsg.encoding
data = sys.stdin.buffer.read().decode('utf-8')
out = []
for line in data.split('\n'):
    if not line:
        continue
    obj = json.loads(line)
    canonical = fedmsg.encoding.dumps(obj)
    assert canonical == json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=True)
    out.append(canonical + '\t' + json.dumps(obj))
sys.stdout.write('\n'.join(out) + '\nALL DONE\n')
"#;

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        2 => proptest::char::range('\u{80}', '\u{7ff}'),
        2 => proptest::char::range('\u{800}', '\u{ffff}'),
        2 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        1 => any::<char>(),
    ]
}

fn any_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(any_char(), 0..12).prop_map(|cs| cs.into_iter().collect())
}

fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Every bit pattern (finite ones kept): the whole range.
        any::<u64>().prop_map(f64::from_bits),
        proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL
            | proptest::num::f64::ZERO
            | proptest::num::f64::NEGATIVE
            | proptest::num::f64::POSITIVE,
        // Around the repr switch points (1e-4, 1e16) and small decimals.
        (-400i32..400, 1u32..100_000).prop_map(|(e, m)| f64::from(m) * 10f64.powi(e / 20)),
        (-20i32..20, any::<i16>()).prop_map(|(e, m)| f64::from(m) * 10f64.powi(e)),
    ]
    .prop_filter("finite", |f| f.is_finite())
}

fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        any_float().prop_map(|f| Value::Number(Number::from_f64(f).expect("finite"))),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((any_string(), inner), 0..6)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `count` values from `strategy`, from a fixed seed (reproducible).
fn generate<S: Strategy>(strategy: S, count: usize, seed: u8) -> Vec<S::Value> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a value")
                .current()
        })
        .collect()
}

/// Python's (canonical, default) dumps of each value, in one run.
fn python_dumps(values: &[Value]) -> Vec<(String, String)> {
    let mut input = String::new();
    for v in values {
        // serde_json prints the shortest text that parses back to the same
        // f64, so Python reads exactly our value.
        input.push_str(&serde_json::to_string(v).expect("serialise"));
        input.push('\n');
    }
    let lines: Vec<(String, String)> =
        zerorpc_testkit::python_lines(zerorpc_testkit::fedmsg_python(), PY_DUMPS, &[], &input)
            .into_iter()
            .map(|l| {
                let (c, d) = l.split_once('\t').expect("two columns");
                (c.to_owned(), d.to_owned())
            })
            .collect();
    assert_eq!(lines.len(), values.len(), "one line per value");
    lines
}

fn compare(values: &[Value]) {
    let expected = python_dumps(values);
    let mut failures = Vec::new();
    for (v, (canonical, default)) in values.iter().zip(&expected) {
        let ours = to_canonical(v);
        if &ours != canonical {
            failures.push(format!(
                "canonical of {v:?}:\n  python {canonical}\n  ours   {ours}"
            ));
        }
        let ours = to_python_default(v);
        if &ours != default {
            failures.push(format!(
                "default of {v:?}:\n  python {default}\n  ours   {ours}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ; first ones:\n{}",
        failures.len(),
        values.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn arbitrary_values_match_python() {
    let values = generate(any_value(), 4000, 7);
    // The generator does produce what we claim to cover.
    let text: String = values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
    assert!(text.chars().any(|c| c > '\u{ffff}'), "astral characters");
    assert!(
        text.contains("\\u0001") || text.contains("\\u001f"),
        "control characters"
    );
    compare(&values);
}

#[test]
fn floats_match_python_repr() {
    let mut values: Vec<Value> = generate(any_float(), 20_000, 11)
        .into_iter()
        .map(|f| Value::Number(Number::from_f64(f).expect("finite")))
        .collect();
    for f in [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        1e16,
        1e-4,
        1e-5,
        9999999999999998.0,
        1e15,
        123456789012345680.0,
    ] {
        values.push(Value::Number(Number::from_f64(f).expect("finite")));
    }
    let subnormals = values
        .iter()
        .filter_map(Value::as_f64)
        .filter(|f| f.is_subnormal())
        .count();
    assert!(subnormals > 10, "subnormals covered ({subnormals})");
    compare(&values);
}

#[test]
fn integers_match_python() {
    let mut values: Vec<Value> = generate(any::<i64>(), 2000, 3)
        .into_iter()
        .map(Value::from)
        .chain(generate(any::<u64>(), 2000, 4).into_iter().map(Value::from))
        .collect();
    values.extend([i64::MIN, i64::MAX, 0, -1].map(Value::from));
    values.push(Value::from(u64::MAX));
    compare(&values);
}
