//! A multi-lang bolt (what Storm's ShellBolt runs): counts words (the
//! first value of each tuple) and emits `[word, count]` anchored to the
//! word's tuple.
//!
//! `cargo build --release --examples -p zerorpc-stream`, then name
//! `target/release/examples/multilang_count` as a shell bolt's command
//! (Flux `FluxShellBolt`, fields `[word, count]`, FIELDS grouping on
//! `word`).

use std::collections::HashMap;

use zerorpc_stream::{Bolt, BoltCollector, BoxError, Outputs, Tuple, Value};

#[derive(Default)]
struct Count {
    counts: HashMap<String, u64>,
}

impl Bolt for Count {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word", "count"])
    }

    fn process(&mut self, tuple: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let word = tuple
            .values
            .first()
            .and_then(Value::as_str)
            .ok_or("the tuple holds no word")?;
        // (`entry` would allocate the key on every tuple.)
        let n = match self.counts.get_mut(word) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.insert(word.to_string(), 1);
                1
            }
        };
        if n == 1 {
            // Goes to stderr (the worker's log), not into the protocol.
            println!("first sight of {word:?}");
        }
        out.emit(&[tuple], vec![Value::from(word), Value::from(n)])?;
        Ok(())
    }
}

fn main() -> Result<(), zerorpc_stream::multilang::RunError> {
    zerorpc_stream::multilang::run(Count::default())
}
