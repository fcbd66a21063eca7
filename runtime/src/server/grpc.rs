//! gRPC calls on an HTTP/2 connection: unary and streaming methods, `grpc-timeout`,
//! `grpc-status`, metadata, gzip, and `grpc.health.v1.Health`.
