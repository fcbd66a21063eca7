//! The http_json target's descriptors: `proto/mapping.proto` (with the well-known types it
//! imports) as an encoded `FileDescriptorSet`, parsed in pure Rust.

use protobuf::Message;

fn main() {
    println!("cargo:rerun-if-changed=proto/mapping.proto");
    let parsed = protobuf_parse::Parser::new()
        .pure()
        .include("proto")
        .input("proto/mapping.proto")
        .parse_and_typecheck()
        .expect("proto/mapping.proto parses");
    let mut set = protobuf::descriptor::FileDescriptorSet::new();
    set.file = parsed.file_descriptors;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("mapping.pb");
    std::fs::write(out, set.write_to_bytes().expect("encodes")).expect("writes");
}
