// A method returning a stream must say `#[zerorpc(stream)]`.
struct Counter;

#[zerorpc::service]
impl Counter {
    pub fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

fn main() {}
