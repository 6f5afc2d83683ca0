// A constructor in the served impl block: say where it belongs.
struct Calc {
    offset: i64,
}

#[zerorpc::service]
impl Calc {
    pub fn new(offset: i64) -> Self {
        Calc { offset }
    }

    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b + self.offset
    }
}

fn main() {}
