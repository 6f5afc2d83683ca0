// A result type must (de)serialize: said at the result, with what to derive.
struct Point { x: i64 }
struct Calc;

#[zerorpc::service]
impl Calc {
    pub fn get(&self, x: i64) -> Point {
        Point { x }
    }
}

fn main() {}
