// Methods cannot be renamed: a `name` option on one is refused, not ignored.
struct Calc;

#[zerorpc::service]
impl Calc {
    #[zerorpc(name = "plus")]
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
