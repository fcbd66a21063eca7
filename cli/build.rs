fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The reflection client: Brisk's own stubs for gRPC server reflection.
    brisk_codegen::compile_protos("proto/reflection.proto")?;
    Ok(())
}
