// Any borrowed argument, even nested, is refused with the owned type to use.
struct Summer;

#[zerorpc::service]
impl Summer {
    pub fn sum(&self, values: Option<&[i64]>) -> i64 {
        values.map(|v| v.iter().sum()).unwrap_or(0)
    }
}

fn main() {}
