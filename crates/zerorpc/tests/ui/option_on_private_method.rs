// `#[zerorpc(...)]` on a method that is not served (not `pub`) would be ignored.
struct Counter;

#[zerorpc::service]
impl Counter {
    #[zerorpc(stream)]
    fn count(&self, n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

fn main() {}
