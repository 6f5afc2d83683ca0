// Arguments are decoded from the request: `&str` cannot borrow from it.
struct Greeter;

#[zerorpc::service]
impl Greeter {
    pub fn hello(&self, name: &str) -> String {
        format!("hello {name}")
    }
}

fn main() {}
