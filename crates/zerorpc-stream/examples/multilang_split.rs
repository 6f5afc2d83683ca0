//! A multi-lang bolt (what Storm's ShellBolt runs): splits the first value
//! of each tuple (a sentence) into words, emits each word anchored to the
//! sentence, and acks it.
//!
//! `cargo build --release --examples -p zerorpc-stream`, then name
//! `target/release/examples/multilang_split` as a shell bolt's command
//! (Flux `FluxShellBolt`, fields `[word]`).

use zerorpc_stream::{Bolt, BoltCollector, BoxError, Outputs, Tuple, Value};

struct Split;

impl Bolt for Split {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["word"])
    }

    fn process(&mut self, tuple: &Tuple, out: &mut BoltCollector<'_>) -> Result<(), BoxError> {
        let sentence = tuple
            .get("sentence")
            .or(tuple.values.first())
            .and_then(Value::as_str)
            .ok_or("the tuple holds no sentence")?;
        for word in sentence.split_whitespace() {
            out.emit(&[tuple], vec![Value::from(word)])?;
        }
        Ok(())
    }
}

fn main() -> Result<(), zerorpc_stream::multilang::RunError> {
    zerorpc_stream::multilang::run(Split)
}
