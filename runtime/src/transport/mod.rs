//! Connections: the batching writer and the byte streams shared by clients and servers, the
//! gRPC message stream both ends read, and (in [`client`]) how a channel's calls reach a
//! server over each protocol's connection discipline.

pub(crate) mod client;
pub(crate) mod dispatcher;
pub(crate) mod gather;
pub(crate) mod grpc_body;
pub(crate) mod grpc_headers;
pub(crate) mod h2_answers;
pub(crate) mod h2_body;
pub(crate) mod h2_keep_alive;
pub(crate) mod h2_writes;
pub(crate) mod id_hasher;
pub(crate) mod read_buffer;
pub(crate) mod rewind;
pub(crate) mod sockets;
pub(crate) mod stream;
pub mod stream_rpc;
pub(crate) mod tcp_write;
pub(crate) mod write_queue;
pub(crate) mod writer;

/// Implements `AsyncWrite` for `$wrapper<S>` by handing every call to its `inner` field, for
/// I/O wrappers that change only how they read.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use forward_async_write;
