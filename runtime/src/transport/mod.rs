//! Connections: the batching writer and the byte streams shared by clients and servers, the
//! gRPC message stream both ends read, and (in [`client`]) how a channel's calls reach a
//! server over each protocol's connection discipline.

pub(crate) mod client;
pub(crate) mod dispatcher;
pub(crate) mod gather;
pub(crate) mod grpc_body;
pub(crate) mod h2_body;
pub(crate) mod h2_keep_alive;
pub(crate) mod id_hasher;
pub(crate) mod read_buffer;
pub(crate) mod rewind;
pub(crate) mod sockets;
pub(crate) mod stream;
pub mod stream_rpc;
pub(crate) mod write_queue;
pub(crate) mod writer;
