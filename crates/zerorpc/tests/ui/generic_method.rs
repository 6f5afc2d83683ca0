// A generic method has no argument types to decode a request into.
struct Echo;

#[zerorpc::service]
impl Echo {
    pub fn echo<T: serde::Serialize>(&self, value: T) -> T {
        value
    }
}

fn main() {}
