//! Read buffers that a connection holds only while it holds part of a frame.
//!
//! A connection with nothing buffered reads into its thread's scratch buffer, and keeps a buffer
//! of just the bytes that came. brpc reads into per-thread blocks shared by all connections for
//! the same reasons:
//! - an idle connection keeps no read buffer, however many there are;
//! - a busy one reads into memory that is warm in the CPU's caches, where thousands of
//!   connections each reading into its own 8 KiB walked through memory the cache had lost.
//!
//! The price is a copy of what each such read brings (at most 16 KiB, usually a few small
//! frames); a frame that arrives in pieces is read straight into its connection's buffer after
//! its first piece.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Smallest free space kept in a read buffer that holds part of a frame, before reading.
const READ_CHUNK: usize = 8 * 1024;

/// Bytes one read takes into a thread's scratch buffer, at most.
const SCRATCH_SIZE: usize = 16 * 1024;

thread_local! {
    /// Where reads on this thread land when their connection holds nothing.
    static SCRATCH: RefCell<Box<[MaybeUninit<u8>]>> =
        RefCell::new(Box::new_uninit_slice(SCRATCH_SIZE));
}

/// Reads what `reader` has into `buf`; `Ok(0)` at the end of the stream.
///
/// With part of a frame in `buf`, the read appends to it (keeping at least `READ_CHUNK / 2`
/// bytes free). With `buf` empty, `buf` gives its memory back before the read waits, and then
/// becomes a buffer of just the bytes that came.
pub(crate) async fn read_some<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    if !buf.is_empty() {
        prepare_read_buffer(buf);
        return reader.read_buf(buf).await;
    }
    *buf = BytesMut::new();
    std::future::poll_fn(|cx| poll_read_fresh(Pin::new(&mut *reader), cx, buf)).await
}

/// Reads into this thread's scratch buffer and copies what came into `buf`, which is empty.
fn poll_read_fresh<R: AsyncRead + ?Sized>(
    mut reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut read_into = |space: &mut ReadBuf<'_>, buf: &mut BytesMut| {
        ready!(reader.as_mut().poll_read(cx, space))?;
        buf.extend_from_slice(space.filled());
        Poll::Ready(Ok(space.filled().len()))
    };
    let polled = SCRATCH.try_with(|scratch| {
        let mut scratch = scratch.try_borrow_mut().ok()?;
        Some(read_into(&mut ReadBuf::uninit(&mut scratch[..]), buf))
    });
    match polled {
        Ok(Some(polled)) => polled,
        // Inside a read on this thread (an I/O object reading another), or while the thread's
        // scratch is being torn down: a small buffer of its own.
        _ => read_into(&mut ReadBuf::new(&mut [0; 1024]), buf),
    }
}

/// Makes room in `buf`, which holds part of a frame, before a read: at least `READ_CHUNK / 2`
/// free bytes.
fn prepare_read_buffer(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_partly_read_frame_gets_room_for_more() {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.extend_from_slice(&[7u8; READ_CHUNK - 10]);
        prepare_read_buffer(&mut buf);
        assert!(buf.capacity() - buf.len() >= READ_CHUNK / 2);
        assert_eq!(buf.len(), READ_CHUNK - 10, "what it holds is kept");
    }

    #[tokio::test]
    async fn an_empty_buffer_is_given_back_and_holds_just_what_came() {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let mut buf = BytesMut::with_capacity(1 << 20);
        far.write_all(b"hello").await.unwrap();
        assert_eq!(read_some(&mut near, &mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..], b"hello");
        assert!(buf.capacity() < 64, "{}", buf.capacity());

        // Part of a frame stays, and the next read appends to it.
        far.write_all(b" world").await.unwrap();
        assert_eq!(read_some(&mut near, &mut buf).await.unwrap(), 6);
        assert_eq!(&buf[..], b"hello world");

        // More than the scratch buffer holds arrives over several reads, in order.
        let big: Vec<u8> = (0..3 * SCRATCH_SIZE).map(|i| i as u8).collect();
        let writer = tokio::spawn(async move {
            far.write_all(&big).await.unwrap();
            drop(far);
            big
        });
        let mut all = Vec::new();
        let mut buf = BytesMut::new();
        loop {
            let n = read_some(&mut near, &mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf.split());
        }
        assert_eq!(all, writer.await.unwrap());
        assert_eq!(buf.capacity(), 0, "an idle connection keeps no buffer");
    }

    #[tokio::test]
    async fn the_end_of_the_stream_reads_as_zero() {
        let (mut near, far) = tokio::io::duplex(64);
        drop(far);
        let mut buf = BytesMut::new();
        assert_eq!(read_some(&mut near, &mut buf).await.unwrap(), 0);
        let mut partial = BytesMut::from(&b"part"[..]);
        assert_eq!(read_some(&mut near, &mut partial).await.unwrap(), 0);
        assert_eq!(&partial[..], b"part");
    }
}
