// A service is shared by concurrent calls: `&mut self` says what to do instead.
struct Counter {
    n: u64,
}

#[zerorpc::service]
impl Counter {
    pub fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

fn main() {}
