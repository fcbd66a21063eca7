//! Sockets: the batching writer shared by clients and servers, and client connections that
//! multiplex many calls.

pub(crate) mod connection;
pub(crate) mod gather;
pub(crate) mod grpc;
pub(crate) mod h2_body;
pub(crate) mod http;
pub(crate) mod pending;
pub(crate) mod rewind;
pub(crate) mod stream;
pub(crate) mod writer;

use bytes::BytesMut;

/// The `authorization` header HTTP and gRPC requests carry when the channel has an
/// authenticator; ERPCAUTH when it fails or makes a credential no header can hold.
pub(crate) fn authorization(
    options: &crate::ChannelOptions,
) -> Result<Option<::http::HeaderValue>, crate::Status> {
    let Some(authenticator) = options.authenticator.as_deref() else {
        return Ok(None);
    };
    let credential = crate::channel::call::generate_credential(authenticator)?;
    ::http::HeaderValue::from_str(&credential)
        .map(Some)
        .map_err(|_| {
            crate::Status::new(
                crate::errno::ERPCAUTH,
                "the credential is not a valid header value",
            )
        })
}

/// The `Host` / `:authority` of HTTP and gRPC requests to `addr`: the TLS server name when the
/// channel has one (virtual hosts route by it), else the address.
pub(crate) fn authority(addr: std::net::SocketAddr, options: &crate::ChannelOptions) -> String {
    #[cfg(feature = "tls")]
    if let Some(name) = options.tls.as_ref().and_then(|tls| tls.server_name()) {
        return format!("{name}:{}", addr.port());
    }
    let _ = options;
    addr.to_string()
}

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
