// A `BoxStream` is a stream too.
use futures::stream::BoxStream;
use futures::StreamExt;

struct Counter;

#[zerorpc::service]
impl Counter {
    pub async fn count(&self, n: u32) -> BoxStream<'static, u32> {
        futures::stream::iter(0..n).boxed()
    }
}

fn main() {}
