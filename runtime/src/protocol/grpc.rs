//! gRPC's framing on HTTP/2, free of I/O: the 5-byte message prefix, `grpc-timeout`,
//! `grpc-status` and brpc error codes, and `grpc-message` percent-encoding.
