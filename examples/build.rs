fn main() -> Result<(), Box<dyn std::error::Error>> {
    brisk_codegen::compile_protos("proto/echo.proto")?;
    brisk_codegen::compile_protos("proto/grpc_testing.proto")?;
    Ok(())
}
