fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The same echo.proto as Brisk's examples, plus compare.proto for the 1 MiB scenario.
    // `bytes` fields as `Bytes`, so the 1 MiB blob is shared, not copied, like an attachment.
    tonic_prost_build::configure().bytes(".").compile_protos(
        &["../proto/echo.proto", "proto/compare.proto"],
        &["../proto", "proto"],
    )?;
    println!("cargo:rerun-if-changed=../proto/echo.proto");
    println!("cargo:rerun-if-changed=proto/compare.proto");
    Ok(())
}
