// An error type the server cannot send says what to use instead.
struct Calc;

#[zerorpc::service]
impl Calc {
    pub fn div(&self, a: i64, b: i64) -> Result<i64, i32> {
        if b == 0 {
            Err(-1)
        } else {
            Ok(a / b)
        }
    }
}

fn main() {}
