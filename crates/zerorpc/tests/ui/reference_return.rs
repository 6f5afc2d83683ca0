// A result is decoded by the typed client: it must be owned.
struct Named {
    name: String,
}

#[zerorpc::service]
impl Named {
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn main() {}
