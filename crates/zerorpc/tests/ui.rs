//! Compile-fail tests of `#[zerorpc::service]`'s diagnostics: each
//! `tests/ui/NAME.rs` must fail to compile with exactly `tests/ui/NAME.stderr`
//! (regenerate with `TRYBUILD=overwrite cargo test -p zerorpc --test ui`
//! after a deliberate change, and read the diff).

#[test]
fn macro_diagnostics_are_clear_and_spanned() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
