//! Charging tokio's budget for the answers an HTTP/2 client connection reads, so one
//! dispatcher turn wakes no more callers than a tokio worker keeps in its own queue.
//!
//! A framed connection's reader hands each answer to its caller itself and spends a unit of
//! tokio's budget on each (`transport::dispatcher`). An HTTP/2 connection's answers are handed
//! on inside `h2`, which wakes each stream's caller as its frames are decoded: one 8 KiB read
//! of small answers wakes over a hundred callers, and a turn of several connections woke more
//! than the 256 ready tasks a worker keeps. tokio moves the overflow to the runtime's shared
//! queue, which a busy worker looks at only every few dozen polls, and the callers sent there
//! waited 15 times the mean (8 connections × 250 calls in flight: p99 300 ms for a mean of
//! 20 ms). [`ChargeAnswers`] finds the frames in what the connection reads (their 9-byte
//! heads are enough; [`FrameScanner`]) and spends a unit of the budget on each one that wakes
//! a caller, so the dispatcher's turn ends when the budget does, as for framed readers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Length of an HTTP/2 frame's head (RFC 9113 §4.1).
const FRAME_HEAD: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const FLAG_END_STREAM: u8 = 0x1;

/// Follows the frame boundaries in a byte stream of HTTP/2 frames fed in pieces, counting
/// the frames that hand something to a caller: DATA frames (a message of the body) and
/// HEADERS frames that end a stream (the trailers, or a response with no body). A unary
/// call's answer is two of them.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    /// The head being read, once all of it has come.
    head: [u8; FRAME_HEAD],
    /// Bytes of `head` so far.
    head_len: usize,
    /// Bytes of the current frame's payload still to pass.
    payload_left: usize,
}

impl FrameScanner {
    /// Follows `bytes`, the next bytes of the stream, and returns how many frames that hand
    /// something to a caller begin in them.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> usize {
        let mut answers = 0;
        loop {
            let skipped = self.payload_left.min(bytes.len());
            self.payload_left -= skipped;
            bytes = &bytes[skipped..];
            if bytes.is_empty() {
                return answers;
            }
            let taken = (FRAME_HEAD - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + taken].copy_from_slice(&bytes[..taken]);
            self.head_len += taken;
            bytes = &bytes[taken..];
            if self.head_len < FRAME_HEAD {
                return answers;
            }
            let [l0, l1, l2, kind, flags, ..] = self.head;
            self.payload_left = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            self.head_len = 0;
            if kind == TYPE_DATA || (kind == TYPE_HEADERS && flags & FLAG_END_STREAM != 0) {
                answers += 1;
            }
        }
    }
}

/// An HTTP/2 client connection's I/O whose reads spend a unit of tokio's budget for each
/// frame that wakes a caller (see the module's docs). A read is never refused for it: what
/// came is handed on, and the next read, with the budget spent, waits for the next turn.
#[derive(Debug)]
pub(crate) struct ChargeAnswers<S> {
    inner: S,
    frames: FrameScanner,
}

impl<S> ChargeAnswers<S> {
    /// `inner`, a client connection's I/O after any TLS: its reads are the server's frames.
    pub(crate) fn new(inner: S) -> Self {
        ChargeAnswers {
            inner,
            frames: FrameScanner::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ChargeAnswers<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let answers = this.frames.scan(&buf.filled()[before..]);
            for _ in 0..answers {
                match tokio::task::coop::poll_proceed(cx) {
                    Poll::Ready(spent) => spent.made_progress(),
                    // Spent: the caller's next read waits (and `cx` is woken for it).
                    Poll::Pending => break,
                }
            }
        }
        read
    }
}

super::forward_async_write!(ChargeAnswers);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A unary answer: response HEADERS, one DATA, trailers.
    fn answer(message: usize) -> Vec<u8> {
        let mut bytes = frame(TYPE_HEADERS, 0x4, &[0x88]);
        bytes.extend(frame(TYPE_DATA, 0, &vec![7; message]));
        bytes.extend(frame(TYPE_HEADERS, 0x4 | FLAG_END_STREAM, &[0x40, 1, b'x']));
        bytes
    }

    #[test]
    fn counts_data_and_stream_ending_headers_in_one_piece() {
        let mut bytes = frame(0x4, 0, &[0; 6]); // SETTINGS
        for _ in 0..3 {
            bytes.extend(answer(581));
        }
        bytes.extend(frame(0x6, 0x1, &[0; 8])); // PING ack
        assert_eq!(FrameScanner::default().scan(&bytes), 6);
    }

    #[test]
    fn counts_the_same_however_the_bytes_are_cut() {
        let mut bytes = Vec::new();
        for size in [0, 1, 16, 581, 20000] {
            bytes.extend(answer(size));
        }
        for piece in [1, 2, 5, 9, 10, 100, 4096] {
            let mut scanner = FrameScanner::default();
            let counted: usize = bytes.chunks(piece).map(|part| scanner.scan(part)).sum();
            assert_eq!(counted, 10, "pieces of {piece} bytes");
            assert_eq!(scanner.head_len, 0);
            assert_eq!(scanner.payload_left, 0);
        }
    }

    #[test]
    fn a_frame_counts_when_its_head_has_come() {
        let bytes = answer(100);
        let mut scanner = FrameScanner::default();
        // The response HEADERS (10 bytes) and the DATA frame's head.
        assert_eq!(scanner.scan(&bytes[..10 + FRAME_HEAD]), 1);
        assert_eq!(scanner.scan(&bytes[10 + FRAME_HEAD..bytes.len() - 1]), 1);
        assert_eq!(scanner.scan(&bytes[bytes.len() - 1..]), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_spend_the_budget_for_each_answer() {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend(answer(16));
        }
        // 200 answers: more than a poll's budget (128), yet all of it is handed on.
        let mut io = ChargeAnswers::new(&bytes[..]);
        let mut read = vec![0; bytes.len()];
        let got = io.read(&mut read).await.unwrap();
        let spent = !tokio::task::coop::has_budget_remaining();
        assert!(spent, "the budget is spent");
        assert_eq!(got, bytes.len());
    }
}
