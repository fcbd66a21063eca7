//! Protobuf messages as JSON (canonical proto3 JSON mapping) for HTTP bodies, by descriptor.
