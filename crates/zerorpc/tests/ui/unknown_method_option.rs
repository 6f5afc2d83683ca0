// A typo in a method's `#[zerorpc(...)]` is an error naming the known options.
struct Counter;

#[zerorpc::service]
impl Counter {
    #[zerorpc(strem)]
    pub fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

fn main() {}
