fn main() -> Result<(), Box<dyn std::error::Error>> {
    brisk_codegen::compile_protos("proto/test.proto")?;
    Ok(())
}
