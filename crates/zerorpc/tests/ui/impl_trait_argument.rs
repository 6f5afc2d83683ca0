// `impl Trait` in argument position is a generic method too.
struct Echo;

#[zerorpc::service]
impl Echo {
    pub fn show(&self, value: impl std::fmt::Display) -> String {
        value.to_string()
    }
}

fn main() {}
