// `stream` is a flag: `stream = true` says how to write it.
struct Counter;

#[zerorpc::service]
impl Counter {
    #[zerorpc(stream = true)]
    pub fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

fn main() {}
