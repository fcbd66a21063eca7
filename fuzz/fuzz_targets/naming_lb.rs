//! What users write to pick servers: naming-service URLs (`list://` parsed; no name is
//! resolved), a `file://` service's file contents, and load-balancer specs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    brisk::fuzzing::naming(text);
    let _ = brisk::lb::from_spec(text);
    if let Some(rest) = text.strip_prefix("list://") {
        let _ = brisk::naming::from_url(&format!("list://{rest}"));
    }
});
