//! Compile tests for `#[brisk::service]`: what it accepts (`ui/pass`, which also run), and the
//! message each misuse gets (`ui/fail/*.stderr`). Regenerate the messages with
//! `TRYBUILD=overwrite cargo test -p brisk-macros --test ui`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
