//! End-to-end tests of the build.rs API: real `.proto` files in, generated files out.

use std::path::{Path, PathBuf};

use brisk_codegen::ErrorKind;

fn protos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

/// Compiles `files` (relative to `include`) into a fresh directory and returns it.
fn compile(files: &[&str], include: &Path) -> Result<tempfile::TempDir, brisk_codegen::Error> {
    let out = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = files.iter().map(|file| include.join(file)).collect();
    brisk_codegen::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&files, &[include])?;
    Ok(out)
}

/// Reads a generated file and checks that it is valid Rust.
fn generated(out: &tempfile::TempDir, name: &str) -> String {
    let path = out.path().join(name);
    let code = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    syn::parse_file(&code).unwrap_or_else(|error| panic!("{name} does not parse: {error}\n{code}"));
    code
}

fn files_in(out: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn proto2_compiles() {
    let out = compile(&["echo.proto"], &protos()).unwrap();
    let code = generated(&out, "example.rs");
    assert!(code.contains("pub struct EchoRequest"));
    assert!(code.contains("pub struct EchoServiceClient"));
}

#[test]
fn proto3_nested_and_well_known_types_compile() {
    let out = compile(&["proto3.proto"], &protos()).unwrap();
    // Well-known types come from `::prost_types`, not from a generated google.protobuf.rs.
    assert_eq!(files_in(&out), ["shop.v1.rs"]);
    let code = generated(&out, "shop.v1.rs");
    for expected in [
        "pub mod order {",
        "pub enum State",
        "::prost_types::Timestamp",
        "::prost_types::Duration",
        "::core::result::Result<order::Line, ::brisk::Status>",
        "request: ()",
        "-> ::core::result::Result<::prost_types::Timestamp, ::brisk::Status>",
        "fn r#type(",
        "fn type_with(",
        "\"shop.v1.OrderService\"",
        "/// Takes and returns well-known types.",
    ] {
        assert!(code.contains(expected), "missing `{expected}` in:\n{code}");
    }
}

#[test]
fn imports_across_two_packages_compile() {
    let include = protos().join("imports");
    let out = compile(&["app/pay.proto"], &include).unwrap();
    assert_eq!(files_in(&out), ["app.pay.rs", "common.rs"]);
    let app = generated(&out, "app.pay.rs");
    assert!(app.contains("super::super::common::Money"), "{app}");
    assert!(app.contains("\"app.pay.PayService\""), "{app}");
    let common = generated(&out, "common.rs");
    assert!(common.contains("pub struct RateServiceClient"), "{common}");
    assert!(common.contains("/// A service in the imported package, generated too."));
}

#[test]
fn empty_package_compiles() {
    let out = compile(&["nopackage.proto"], &protos()).unwrap();
    assert_eq!(files_in(&out), ["_.rs"]);
    let code = generated(&out, "_.rs");
    assert!(code.contains("pub const SERVICE_NAME: &'static str = \"Pinger\";"));
}

#[test]
fn builder_switches_parts_off() {
    let out = tempfile::tempdir().unwrap();
    brisk_codegen::configure()
        .build_client(false)
        .build_blocking_client(false)
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .type_attribute(".example.EchoRequest", "#[derive(Eq, Hash)]")
        .compile(&[protos().join("echo.proto")], &[protos()])
        .unwrap();
    let code = generated(&out, "example.rs");
    assert!(code.contains("pub struct EchoServiceServer"));
    assert!(!code.contains("EchoServiceClient"));
    assert!(code.contains("#[derive(Eq, Hash)]"));
}

#[test]
fn syntax_error_names_file_and_line() {
    let error = compile(&["syntax_error.proto"], &protos()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Parse);
    let message = error.to_string();
    // The missing `;` after `string a = 1` is noticed at the next token, on line 6.
    assert!(message.contains("syntax_error.proto:6:"), "{message}");
    assert!(message.contains("expecting char `;`"), "{message}");
}

#[test]
fn unknown_type_names_file_and_line() {
    let error = compile(&["unknown_type.proto"], &protos()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Parse);
    let message = error.to_string();
    assert!(message.contains("unknown_type.proto:6:3:"), "{message}");
    assert!(message.contains("unknown type `NoSuchType`"), "{message}");
}

#[test]
fn missing_import_names_the_importing_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.proto"),
        "syntax = \"proto3\";\n\nimport \"nowhere/b.proto\";\n",
    )
    .unwrap();
    let message = compile(&["a.proto"], dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("a.proto:3:8: cannot find import `nowhere/b.proto`"),
        "{message}"
    );
}

#[test]
fn streaming_methods_generate_every_kind() {
    let out = compile(&["streaming.proto"], &protos()).unwrap();
    let code = generated(&out, "example.rs");
    for expected in [
        // The trait: a stream of requests for `Foo`, a stream of responses for `Bar`.
        "requests: ::brisk::Streaming<EchoRequest>,",
        "::brisk::ResponseStream<EchoResponse>",
        // The adapter.
        "fn method_kinds(&self) -> &'static [::brisk::codegen::MethodKind]",
        "::brisk::codegen::MethodKind::ClientStreaming",
        "::brisk::codegen::MethodKind::ServerStreaming",
        "fn call_streaming(",
        "::brisk::codegen::single_request::<",
        "needs protocol h2:grpc",
        // The async client.
        "requests: impl ::brisk::codegen::Stream<",
        "::brisk::Streaming<EchoResponse>",
        // The blocking client names what it leaves out.
        "Streaming methods (`Foo`, `Bar`) are left out",
    ] {
        assert!(code.contains(expected), "missing `{expected}` in:\n{code}");
    }
    let blocking = &code[code.find("pub struct EchoServiceBlockingClient").unwrap()..];
    assert!(blocking.contains("pub fn echo("), "{blocking}");
    assert!(!blocking.contains("pub fn foo("), "{blocking}");
    assert!(!blocking.contains("pub fn bar("), "{blocking}");
}

#[test]
fn descriptor_set_constant_holds_well_known_imports() {
    let out = compile(&["proto3.proto"], &protos()).unwrap();
    let code = generated(&out, "shop.v1.rs");
    assert_eq!(
        code.matches("pub const FILE_DESCRIPTOR_SET: &[u8] = b\"")
            .count(),
        1
    );
    assert!(
        code.contains("file_descriptor_set: FILE_DESCRIPTOR_SET"),
        "{code}"
    );
    let file = syn::parse_file(&code).unwrap();
    let bytes = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Const(item) if item.ident == "FILE_DESCRIPTOR_SET" => match &*item.expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::ByteStr(literal),
                    ..
                }) => Some(literal.value()),
                _ => None,
            },
            _ => None,
        })
        .expect("a byte-string constant");
    // Well-known imports are in the set: their names are in the encoding, before the file.
    let text = String::from_utf8_lossy(&bytes);
    let timestamp = text
        .find("google/protobuf/timestamp.proto")
        .expect("timestamp import");
    let shop = text.find("\u{12}\u{7}shop.v1").expect("the file's package");
    assert!(timestamp < shop, "imports come first");

    // A client alone still carries the constant (its methods attach it, for JSON over HTTP).
    let out = tempfile::tempdir().unwrap();
    brisk_codegen::configure()
        .build_server(false)
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[protos().join("proto3.proto")], &[protos()])
        .unwrap();
    let code = generated(&out, "shop.v1.rs");
    assert!(
        code.contains(".with_file_descriptor_set(FILE_DESCRIPTOR_SET)"),
        "{code}"
    );

    // Neither server nor client emitted: nothing needs the constant.
    let out = tempfile::tempdir().unwrap();
    brisk_codegen::configure()
        .build_server(false)
        .build_client(false)
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[protos().join("proto3.proto")], &[protos()])
        .unwrap();
    let code = generated(&out, "shop.v1.rs");
    assert!(!code.contains("FILE_DESCRIPTOR_SET"), "{code}");
}

#[test]
fn compile_protos_shorthand_uses_the_parent_dir() {
    // Without `out_dir` the shorthand writes to OUT_DIR, as prost does; no OUT_DIR here.
    let error = brisk_codegen::compile_protos(protos().join("echo.proto")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(error.to_string().contains("OUT_DIR"), "{error}");
}

/// Found by the `proto_codegen` fuzz target: a message whose fields before a well-known message
/// type are all scalars made prost-build look the well-known message up (to decide whether the
/// message can derive `Copy`), and it panicked when the well-known files were left out.
#[test]
fn a_scalar_then_a_well_known_message_compiles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wkt_after_scalar.proto"),
        r#"syntax = "proto3";
package fuzz.regression;
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
message Everything {
    double ratio = 1;
    google.protobuf.Value value = 2;
    google.protobuf.Timestamp at = 3;
}
service Mapping {
    rpc Call(Everything) returns (Everything);
}
"#,
    )
    .unwrap();
    let out = compile(&["wkt_after_scalar.proto"], dir.path()).unwrap();
    // Still nothing generated for google.protobuf: it maps to `::prost_types`.
    assert_eq!(files_in(&out), ["fuzz.regression.rs"]);
    let code = generated(&out, "fuzz.regression.rs");
    assert!(code.contains("::prost_types::Value"), "{code}");
    assert!(code.contains("pub struct MappingClient"), "{code}");
}

/// Found by the `proto_codegen` fuzz target: a mangled copy of `interop.proto` on which
/// protobuf-parse panics (an `unwrap` in its option resolver). The build gets an error, not a
/// panic.
#[test]
fn a_file_the_parser_panics_on_is_an_error() {
    let error = compile(&["option_resolver_panic.proto"], &protos().join("fuzz")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(
        error.to_string().contains("the .proto parser failed"),
        "{error}"
    );
}
