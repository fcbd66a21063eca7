//! `RpcMeta` and friends from brpc's `baidu_rpc_meta.proto` (proto2, package `brpc.policy`),
//! with every field kept, so a frame decodes and re-encodes without loss.
//!
//! Field presence is proto2's: `Option` fields are emitted when `Some`, even when zero, which is
//! what makes Brisk's frames byte-identical to brpc's.

use std::collections::HashMap;

use bytes::Bytes;

/// The meta of every baidu_std frame. A request carries `request`, a response `response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcMeta {
    /// Present on requests.
    #[prost(message, optional, tag = "1")]
    pub request: Option<RpcRequestMeta>,
    /// Present on responses.
    #[prost(message, optional, tag = "2")]
    pub response: Option<RpcResponseMeta>,
    /// How the payload is compressed ([`CompressType`](crate::CompressType)).
    #[prost(int32, optional, tag = "3")]
    pub compress_type: Option<i32>,
    /// Matches a response to its request; echoed by the server.
    #[prost(int64, optional, tag = "4")]
    pub correlation_id: Option<i64>,
    /// Bytes at the end of the body that are the attachment, not the payload.
    #[prost(int32, optional, tag = "5")]
    pub attachment_size: Option<i32>,
    /// Not supported by brpc either; kept so it round-trips.
    #[prost(message, optional, tag = "6")]
    pub chunk_info: Option<ChunkInfo>,
    /// Credential from the client's authenticator (first request of a connection).
    #[prost(bytes = "bytes", optional, tag = "7")]
    pub authentication_data: Option<Bytes>,
    /// Streaming RPC setup.
    #[prost(message, optional, tag = "8")]
    pub stream_settings: Option<StreamSettings>,
    /// Free-form key/value pairs set by the user.
    #[prost(map = "string, string", tag = "9")]
    pub user_fields: HashMap<String, String>,
    /// Payload encoding: 0 = protobuf, 1 = JSON, 2 = proto-JSON, 3 = proto-text.
    #[prost(int32, optional, tag = "10")]
    pub content_type: Option<i32>,
    /// 0 = none, 1 = crc32c.
    #[prost(int32, optional, tag = "11")]
    pub checksum_type: Option<i32>,
    /// The checksum, when `checksum_type` is set.
    #[prost(bytes = "bytes", optional, tag = "12")]
    pub checksum_value: Option<Bytes>,
    /// Whether the checksum covers the attachment too.
    #[prost(bool, optional, tag = "13")]
    pub checksum_with_attachment: Option<bool>,
}

/// Request part of [`RpcMeta`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcRequestMeta {
    /// Full (`example.EchoService`) or short (`EchoService`) service name.
    #[prost(string, required, tag = "1")]
    pub service_name: String,
    /// Method name as in the `.proto` (`Echo`).
    #[prost(string, required, tag = "2")]
    pub method_name: String,
    /// Caller-chosen id for tracing through logs.
    #[prost(int64, optional, tag = "3")]
    pub log_id: Option<i64>,
    /// rpcz trace id.
    #[prost(int64, optional, tag = "4")]
    pub trace_id: Option<i64>,
    /// rpcz span id.
    #[prost(int64, optional, tag = "5")]
    pub span_id: Option<i64>,
    /// rpcz parent span id.
    #[prost(int64, optional, tag = "6")]
    pub parent_span_id: Option<i64>,
    /// `x-request-id`.
    #[prost(string, optional, tag = "7")]
    pub request_id: Option<String>,
    /// The client's timeout, when it chooses to send it.
    #[prost(int32, optional, tag = "8")]
    pub timeout_ms: Option<i32>,
}

/// Response part of [`RpcMeta`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResponseMeta {
    /// 0 on success, else a brpc error code.
    #[prost(int32, optional, tag = "1")]
    pub error_code: Option<i32>,
    /// Error text when `error_code != 0`.
    #[prost(string, optional, tag = "2")]
    pub error_text: Option<String>,
}

/// brpc's `ChunkInfo` (unsupported, kept for round trips).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkInfo {
    /// Stream id.
    #[prost(int64, required, tag = "1")]
    pub stream_id: i64,
    /// Chunk id.
    #[prost(int64, required, tag = "2")]
    pub chunk_id: i64,
}

/// brpc's `StreamSettings` (streaming RPC setup).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamSettings {
    /// The sender's stream id.
    #[prost(int64, required, tag = "1")]
    pub stream_id: i64,
    /// Whether the receiver must send FEEDBACK frames.
    #[prost(bool, optional, tag = "2")]
    pub need_feedback: Option<bool>,
    /// Whether the stream is writable by the receiver.
    #[prost(bool, optional, tag = "3")]
    pub writable: Option<bool>,
    /// More streams opened by the same RPC.
    #[prost(int64, repeated, packed = "false", tag = "4")]
    pub extra_stream_ids: Vec<i64>,
}
