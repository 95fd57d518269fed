//! Compiles every case in `pass/` (each must build and run) and `fail/`
//! (each must fail with exactly its `.stderr`). `TRYBUILD=overwrite`
//! rewrites the snapshots; see the README.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*.rs");
}
