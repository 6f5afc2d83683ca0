// A typo in `#[zerorpc::service(...)]` is an error naming the known options.
struct Calc;

#[zerorpc::service(nmae = "calc")]
impl Calc {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
