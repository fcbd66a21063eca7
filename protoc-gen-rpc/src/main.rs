//! The `protoc-gen-rpc` binary: a `CodeGeneratorRequest` on stdin, a `CodeGeneratorResponse` on
//! stdout. Errors in the request go into the response (exit code 0), as protoc expects.

use std::io::{self, Read, Write};
use std::process::ExitCode;

const USAGE: &str = "\
protoc-gen-rpc: a protoc plugin generating prost messages and Brisk RPC services

Usage (protoc runs it; you don't):
    protoc --rpc_out=OUT_DIR [--rpc_opt=OPTION,...] -I INCLUDE_DIR FILE.proto...

Writes one <package>.rs per protobuf package. Options (comma-separated):
    client, server, blocking_client      which parts to emit (=false turns one off)
    codec_path=::path::Codec             codec of the stubs
    extern_path=.proto.path=::rust::path, bytes=.path, btree_map=.path, boxed=.path,
    type_attribute=.path=#[attr], message_attribute=..., enum_attribute=...,
    field_attribute=..., compile_well_known_types, disable_comments=.path,
    skip_debug=.path, retain_enum_prefix, enable_type_names, type_name_domain=.path=domain,
    prost_path=::path, prost_types_path=::path, default_package_filename=name

Flags:
    -h, --help       print this help
    -V, --version    print the version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-V" | "--version") => {
            println!("protoc-gen-rpc {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("protoc-gen-rpc: unexpected argument `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let mut request = Vec::new();
    if let Err(error) = io::stdin().lock().read_to_end(&mut request) {
        eprintln!("protoc-gen-rpc: cannot read the request from stdin: {error}");
        return ExitCode::FAILURE;
    }
    let response = protoc_gen_rpc::execute(&request);
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout.write_all(&response).and_then(|()| stdout.flush()) {
        eprintln!("protoc-gen-rpc: cannot write the response to stdout: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
