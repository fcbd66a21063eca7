fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `brisk.test` (unary) and `interop` (all four method kinds, for the gRPC tests).
    brisk_codegen::configure().compile(&["proto/test.proto", "proto/interop.proto"], &["proto"])?;
    // `brisk.lints`: generated code a crate mostly does not use (tests/generated_code_lints.rs).
    brisk_codegen::configure().compile(&["proto/lints.proto"], &["proto"])?;
    Ok(())
}
