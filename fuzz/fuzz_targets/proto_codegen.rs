//! `.proto` input to the code generator, through its `build.rs` front door: parse, check, and
//! generate (or a clear error), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The generator turns its dependencies' panics (protobuf-parse's, prost-build's) into
    // errors; libfuzzer-sys's panic hook would abort on them even caught. A panic that escapes
    // the generator still fails the target: `fuzz_target!` aborts on it.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let proto = dir.path().join("fuzzed.proto");
    if std::fs::write(&proto, data).is_err() {
        return;
    }
    let _ = brisk_codegen::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile(&[&proto], &[dir.path()]);
});
