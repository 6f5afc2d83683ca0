// An argument type must (de)serialize: said at the argument, with what to derive.
struct Point { x: i64 }
struct Calc;

#[zerorpc::service]
impl Calc {
    pub fn get(&self, p: Point) -> i64 {
        p.x
    }
}

fn main() {}
