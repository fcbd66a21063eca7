//! HTTP bodies through protobuf's JSON mapping (and its text format), both ways, on a message
//! with every kind of field the mapping treats specially (`proto/mapping.proto`).
#![no_main]

use libfuzzer_sys::fuzz_target;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mapping.pb"));

fuzz_target!(|data: &[u8]| {
    brisk::fuzzing::http_json(DESCRIPTORS, "fuzz.mapping.Mapping", &["Call", "Nest"], data);
});
