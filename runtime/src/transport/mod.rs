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
pub(crate) mod rewind;
pub(crate) mod sockets;
pub(crate) mod stream;
pub mod stream_rpc;
pub(crate) mod writer;

use bytes::BytesMut;

/// Smallest free space kept in a read buffer before reading, and the first buffer's size.
pub(crate) const READ_CHUNK: usize = 8 * 1024;

/// An empty read buffer larger than this is given back, so a connection that once carried a
/// big frame does not keep its memory while idle.
const MAX_IDLE_READ_BUFFER: usize = 64 * 1024;

/// A new read buffer.
pub(crate) fn read_buffer() -> BytesMut {
    BytesMut::with_capacity(READ_CHUNK)
}

/// Makes room in `buf` before a read: at least `READ_CHUNK / 2` free bytes, and a fresh small
/// buffer instead of an empty oversized one.
pub(crate) fn prepare_read_buffer(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > MAX_IDLE_READ_BUFFER {
        *buf = read_buffer();
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_keep_room_and_shrink_when_idle() {
        let mut buf = read_buffer();
        buf.extend_from_slice(&[0u8; READ_CHUNK - 10]);
        prepare_read_buffer(&mut buf);
        assert!(buf.capacity() - buf.len() >= READ_CHUNK / 2);

        let mut big = BytesMut::with_capacity(4 << 20);
        prepare_read_buffer(&mut big);
        assert!(big.capacity() <= MAX_IDLE_READ_BUFFER, "{}", big.capacity());

        let mut busy = BytesMut::with_capacity(4 << 20);
        busy.extend_from_slice(b"partial frame");
        prepare_read_buffer(&mut busy);
        assert_eq!(&busy[..], b"partial frame", "a buffer holding data is kept");
    }
}
