//! A multi-lang spout (what Storm's ShellSpout runs): emits the sentences
//! `sentence 0` .. up to `sentences.count` from the topology configuration
//! (default 100), each with its number as message id; a failed one is
//! emitted again; an acked one is logged at debug level.

use zerorpc_stream::{BoxError, MsgId, Outputs, Spout, SpoutCollector, SpoutWaker, TaskContext};

#[derive(Default)]
struct Sentences {
    next: u64,
    total: u64,
    replay: Vec<u64>,
}

const WORDS: &[&str] = &["the", "cow", "jumped", "over", "the", "moon"];

impl Spout for Sentences {
    fn outputs(&self) -> Outputs {
        Outputs::fields(["sentence"])
    }

    fn open(&mut self, ctx: &TaskContext, _waker: SpoutWaker) -> Result<(), BoxError> {
        self.total = ctx
            .config
            .get("sentences.count")
            .and_then(|v| v.as_u64())
            .unwrap_or(100);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        let i = match self.replay.pop() {
            Some(i) => i,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        let sentence = format!("{} {}", WORDS[i as usize % WORDS.len()], i);
        out.emit(vec![sentence.into()], i.into())?;
        Ok(())
    }

    fn ack(&mut self, msg_id: MsgId, out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        out.log(1, &format!("acked {msg_id}"));
        Ok(())
    }

    fn fail(&mut self, msg_id: MsgId, _out: &mut SpoutCollector<'_>) -> Result<(), BoxError> {
        self.replay
            .push(msg_id.as_u64().ok_or("a message id that is not ours")?);
        Ok(())
    }
}

fn main() -> Result<(), zerorpc_stream::multilang::RunError> {
    zerorpc_stream::multilang::run_spout(Sentences::default())
}
