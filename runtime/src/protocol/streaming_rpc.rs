//! brpc's streaming RPC frames ("streaming_rpc", `STRM`): the wire format of the streams a
//! baidu_std call opens, free of I/O.
//!
//! A stream is set up by an ordinary baidu_std call whose `RpcMeta.stream_settings`
//! ([`StreamSettings`](super::baidu_std::StreamSettings)) names the caller's stream; the server
//! answers that call inside a `STRM` DATA frame. Then either side sends [`StreamFrame`]s on the
//! same connection, each addressed to the receiver's stream id:
//!
//! ```text
//! "STRM" | body_size: u32 BE | meta_size: u32 BE | StreamFrameMeta | data (DATA frames only)
//! ```
//!
//! DATA frames carry a message, split over several frames (`has_continuation`) when it is
//! larger than the sender's segment size ([`segments`], [`Reassembly`]); FEEDBACK frames carry
//! the running total of bytes the receiver consumed, for flow control; CLOSE is answered by
//! CLOSE; a frame for a stream the receiver does not have is answered by RST
//! ([`StreamFrame::reset_reply`]).
//!
//! ```
//! use brisk::protocol::streaming_rpc::{decode_frame, Decoded, StreamFrame};
//! use bytes::{Bytes, BytesMut};
//!
//! let frame = StreamFrame::Data {
//!     stream_id: 146,
//!     source_stream_id: 0,
//!     has_continuation: false,
//!     data: Bytes::from_static(b"0123456789"),
//! };
//! let mut buf = BytesMut::new();
//! frame.encode(&mut buf);
//! assert_eq!(&buf[..4], b"STRM");
//! assert_eq!(decode_frame(&mut buf, 1 << 20).unwrap(), Some(Decoded::Frame(frame)));
//! ```

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

pub use super::codec::StreamSetup;
use super::cut::cut_frame;
use super::OutFrame;

/// The id a reply names as its sender when the server did not accept the stream its call
/// offered (brpc's `INVALID_STREAM_ID`, `(uint64_t)-1`).
pub const INVALID_STREAM_ID: i64 = -1;

/// Wraps a reply `frame` as the data of one DATA frame to stream `stream_id`, from
/// `source_stream_id` ([`INVALID_STREAM_ID`] when the server did not accept the stream): how
/// brpc's servers answer a call that offered a stream, so that the reply reaches the caller
/// before anything the server's stream sends. Copies only the reply's head.
pub fn wrap_reply(stream_id: i64, source_stream_id: i64, frame: OutFrame) -> OutFrame {
    let mut head = BytesMut::with_capacity(HEADER_LEN + 32 + frame.head.len());
    encode_data_head(&mut head, stream_id, source_stream_id, false, frame.len());
    head.extend_from_slice(&frame.head);
    OutFrame {
        head: head.freeze(),
        payload: frame.payload,
        attachment: frame.attachment,
    }
}

/// Appends the header and meta of a DATA frame carrying `data_len` bytes (which the caller
/// writes after): the same bytes as [`StreamFrame::encode_head`] for that frame.
///
/// # Panics
///
/// If `data_len` is over [`MAX_DATA_LEN`].
pub fn encode_data_head(
    dst: &mut BytesMut,
    stream_id: i64,
    source_stream_id: i64,
    has_continuation: bool,
    data_len: usize,
) {
    assert!(
        data_len <= MAX_DATA_LEN,
        "a frame's data fits in its u32 body size"
    );
    let meta = StreamFrameMeta {
        stream_id,
        source_stream_id: Some(source_stream_id),
        frame_type: Some(FrameType::Data as i32),
        has_continuation: Some(has_continuation),
        feedback: None,
    };
    put_head(dst, &meta, data_len);
}

/// Appends the fixed header and `meta`, for a frame whose data is `data_len` bytes.
fn put_head(dst: &mut BytesMut, meta: &StreamFrameMeta, data_len: usize) {
    let meta_len = meta.encoded_len();
    let body_size = meta_len + data_len;
    dst.reserve(HEADER_LEN + meta_len);
    dst.put_slice(MAGIC);
    dst.put_u32(u32::try_from(body_size).expect("a frame body fits in u32"));
    dst.put_u32(u32::try_from(meta_len).expect("a meta fits in u32"));
    meta.encode_raw(dst);
}

/// The magic number that starts every `STRM` frame.
pub const MAGIC: &[u8; 4] = b"STRM";

/// Size of the fixed frame header: magic, body size, meta size.
pub const HEADER_LEN: usize = 12;

/// brpc's default `-stream_write_max_segment_size`: a message larger than this goes out in
/// several DATA frames.
pub const DEFAULT_MAX_SEGMENT_SIZE: usize = 512 * 1024 * 1024;

/// The most data one frame can carry: its `u32` body size holds the meta too.
pub const MAX_DATA_LEN: usize = u32::MAX as usize - 256;

/// The meta of a `STRM` frame (brpc's `streaming_rpc_meta.proto`, proto2: `Option` fields are
/// written when `Some`, which keeps frames byte-identical to brpc's).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StreamFrameMeta {
    /// The receiver's stream id (the id the peer announced).
    #[prost(int64, required, tag = "1")]
    pub stream_id: i64,
    /// The sender's own stream id (absent in RST frames).
    #[prost(int64, optional, tag = "2")]
    pub source_stream_id: Option<i64>,
    /// 1 RST, 2 CLOSE, 3 DATA, 4 FEEDBACK ([`FrameType`]).
    #[prost(enumeration = "FrameType", optional, tag = "3")]
    pub frame_type: Option<i32>,
    /// On DATA frames: whether the message goes on in the next frame.
    #[prost(bool, optional, tag = "4")]
    pub has_continuation: Option<bool>,
    /// On FEEDBACK frames: what the receiver has consumed.
    #[prost(message, optional, tag = "5")]
    pub feedback: Option<Feedback>,
}

/// The flow-control report of a FEEDBACK frame.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Feedback {
    /// The bytes of messages the receiver has consumed since the stream opened (a running
    /// total, not an increment).
    #[prost(int64, optional, tag = "1")]
    pub consumed_size: Option<i64>,
}

/// The kind of a `STRM` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FrameType {
    /// No type (brpc's `FRAME_TYPE_UNKNOWN`): what prost reads for an absent or unknown one.
    Unknown = 0,
    /// The receiver has no such stream (or gave up on it).
    Rst = 1,
    /// The sender closed its stream.
    Close = 2,
    /// A message, or a segment of one.
    Data = 3,
    /// The receiver's consumed-bytes total, for the sender's window.
    Feedback = 4,
}

/// One `STRM` frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// A message (or a segment of one) for stream `stream_id`.
    Data {
        /// The receiver's stream.
        stream_id: i64,
        /// The sender's stream.
        source_stream_id: i64,
        /// Whether the message continues in the next DATA frame.
        has_continuation: bool,
        /// The message's bytes (or this segment's).
        data: Bytes,
    },
    /// The receiver of stream `source_stream_id`'s messages has consumed `consumed_size` bytes
    /// in all.
    Feedback {
        /// The receiver of this frame: the stream that sends the data.
        stream_id: i64,
        /// The stream that consumed the data.
        source_stream_id: i64,
        /// The running total of bytes consumed.
        consumed_size: i64,
    },
    /// The sender closed stream `source_stream_id`; the receiver closes `stream_id`.
    Close {
        /// The receiver's stream.
        stream_id: i64,
        /// The sender's stream.
        source_stream_id: i64,
    },
    /// Stream `stream_id` is reset: its peer does not have the stream it wrote to.
    Rst {
        /// The receiver's stream.
        stream_id: i64,
    },
}

impl StreamFrame {
    /// The receiver's stream id.
    pub fn stream_id(&self) -> i64 {
        match *self {
            StreamFrame::Data { stream_id, .. }
            | StreamFrame::Feedback { stream_id, .. }
            | StreamFrame::Close { stream_id, .. }
            | StreamFrame::Rst { stream_id } => stream_id,
        }
    }

    /// brpc's answer to this frame when its receiver has no stream `stream_id`: RST to the
    /// sender's stream, unless the frame is FEEDBACK (the stream may have closed with
    /// feedback in flight). An RST is never answered (brpc answers one that names its sender,
    /// which lets two peers trade RSTs; Brisk's [`StreamFrame::Rst`] names none).
    ///
    /// ```
    /// use brisk::protocol::streaming_rpc::StreamFrame;
    /// let close = StreamFrame::Close { stream_id: 999, source_stream_id: 5 };
    /// assert_eq!(close.reset_reply(), Some(StreamFrame::Rst { stream_id: 5 }));
    /// ```
    pub fn reset_reply(&self) -> Option<StreamFrame> {
        match *self {
            StreamFrame::Data {
                source_stream_id, ..
            }
            | StreamFrame::Close {
                source_stream_id, ..
            } => Some(StreamFrame::Rst {
                stream_id: source_stream_id,
            }),
            StreamFrame::Feedback { .. } | StreamFrame::Rst { .. } => None,
        }
    }

    /// The frame's meta, as brpc writes it.
    pub fn meta(&self) -> StreamFrameMeta {
        let (stream_id, source_stream_id, frame_type) = match *self {
            StreamFrame::Data {
                stream_id,
                source_stream_id,
                ..
            } => (stream_id, Some(source_stream_id), FrameType::Data),
            StreamFrame::Feedback {
                stream_id,
                source_stream_id,
                ..
            } => (stream_id, Some(source_stream_id), FrameType::Feedback),
            StreamFrame::Close {
                stream_id,
                source_stream_id,
            } => (stream_id, Some(source_stream_id), FrameType::Close),
            StreamFrame::Rst { stream_id } => (stream_id, None, FrameType::Rst),
        };
        StreamFrameMeta {
            stream_id,
            source_stream_id,
            frame_type: Some(frame_type as i32),
            has_continuation: match self {
                StreamFrame::Data {
                    has_continuation, ..
                } => Some(*has_continuation),
                _ => None,
            },
            feedback: match self {
                StreamFrame::Feedback { consumed_size, .. } => Some(Feedback {
                    consumed_size: Some(*consumed_size),
                }),
                _ => None,
            },
        }
    }

    /// The data of a DATA frame; empty for the others.
    pub fn data(&self) -> &[u8] {
        match self {
            StreamFrame::Data { data, .. } => data,
            _ => &[],
        }
    }

    /// Appends the frame's header and meta: all of it but a DATA frame's data, which the
    /// caller writes after (without copying it into `dst`).
    ///
    /// # Panics
    ///
    /// If the data is over [`MAX_DATA_LEN`] bytes: the header cannot say its size ([`segments`]
    /// never makes such frames).
    pub fn encode_head(&self, dst: &mut BytesMut) {
        put_head(dst, &self.meta(), self.data().len());
    }

    /// Appends the whole frame.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_head(dst);
        dst.put_slice(self.data());
    }
}

/// Why bytes are not a valid `STRM` frame (see [`decode_frame`] for which end the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame does not start with `STRM`.
    BadMagic([u8; 4]),
    /// `body_size` exceeds the limit.
    TooBig {
        /// The declared body size.
        body_size: usize,
        /// The limit.
        max_body_size: usize,
    },
    /// `meta_size` exceeds `body_size`.
    MetaTooBig {
        /// The declared meta size.
        meta_size: usize,
        /// The declared body size.
        body_size: usize,
    },
    /// The meta is not a valid `StreamFrameMeta`.
    BadMeta(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(m) => write!(f, "not a STRM frame (starts with {m:02x?})"),
            FrameError::TooBig {
                body_size,
                max_body_size,
            } => write!(
                f,
                "body_size={body_size} is bigger than max_body_size={max_body_size}"
            ),
            FrameError::MetaTooBig {
                meta_size,
                body_size,
            } => write!(
                f,
                "meta_size={meta_size} is bigger than body_size={body_size}"
            ),
            FrameError::BadMeta(e) => write!(f, "fail to parse StreamFrameMeta: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// What [`decode_frame`] cut off the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid frame.
    Frame(StreamFrame),
    /// A frame that is not valid, dropped as brpc drops it (the connection goes on).
    Malformed(MalformedFrame),
}

/// A frame cut whole off the connection whose meta is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedFrame {
    /// What is wrong with it.
    pub reason: String,
    /// Its meta, when that decoded.
    pub meta: Option<StreamFrameMeta>,
}

impl MalformedFrame {
    /// brpc's answer when the frame's stream is unknown: RST to the sender it names, unless it
    /// is FEEDBACK or RST (see [`StreamFrame::reset_reply`]).
    pub fn reset_reply(&self) -> Option<StreamFrame> {
        let meta = self.meta.as_ref()?;
        let kind = meta.frame_type.and_then(|t| FrameType::try_from(t).ok());
        if matches!(kind, Some(FrameType::Feedback | FrameType::Rst)) {
            return None;
        }
        meta.source_stream_id
            .map(|stream_id| StreamFrame::Rst { stream_id })
    }
}

/// Cuts the next `STRM` frame off the front of `buf`: `Ok(None)` until it has all arrived.
///
/// A frame whose meta does not decode or does not make sense (a `meta_size` over its body, an
/// unknown frame type, a DATA or CLOSE without its sender, data on a frame that carries none)
/// is cut off and returned as [`Decoded::Malformed`], as brpc drops such a frame and goes on.
/// `Err` is for bytes that are not `STRM` at all ([`FrameError::BadMagic`]: the connection's
/// other protocol, baidu_std, may take them, as brpc tries each protocol) and for a body over
/// `max_body_size` (the connection must close).
pub fn decode_frame(
    buf: &mut BytesMut,
    max_body_size: usize,
) -> Result<Option<Decoded>, FrameError> {
    let prefix = buf.len().min(MAGIC.len());
    if buf[..prefix] != MAGIC[..prefix] {
        let mut seen = [0u8; 4];
        seen[..prefix].copy_from_slice(&buf[..prefix]);
        return Err(FrameError::BadMagic(seen));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let body_size = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let meta_size = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if body_size > max_body_size {
        return Err(FrameError::TooBig {
            body_size,
            max_body_size,
        });
    }
    let Some(frame_len) = HEADER_LEN.checked_add(body_size) else {
        return Err(FrameError::TooBig {
            body_size,
            max_body_size,
        });
    };
    let Some(mut frame) = cut_frame(buf, frame_len) else {
        return Ok(None);
    };
    frame.advance(HEADER_LEN);
    let malformed = |reason: String, meta: Option<StreamFrameMeta>| {
        Ok(Some(Decoded::Malformed(MalformedFrame { reason, meta })))
    };
    if meta_size > body_size {
        return malformed(
            FrameError::MetaTooBig {
                meta_size,
                body_size,
            }
            .to_string(),
            None,
        );
    }
    let meta = match StreamFrameMeta::decode(frame.split_to(meta_size)) {
        Ok(meta) => meta,
        Err(e) => return malformed(FrameError::BadMeta(e.to_string()).to_string(), None),
    };
    match frame_of(&meta, frame) {
        Ok(frame) => Ok(Some(Decoded::Frame(frame))),
        Err(reason) => malformed(reason, Some(meta)),
    }
}

/// The typed frame of a decoded meta and the data after it, or what is wrong with them.
fn frame_of(meta: &StreamFrameMeta, data: Bytes) -> Result<StreamFrame, String> {
    let stream_id = meta.stream_id;
    let source = || {
        meta.source_stream_id
            .ok_or_else(|| "no source_stream_id".to_owned())
    };
    let kind = meta
        .frame_type
        .and_then(|t| FrameType::try_from(t).ok())
        .filter(|kind| *kind != FrameType::Unknown)
        .ok_or_else(|| format!("unknown frame_type {:?}", meta.frame_type))?;
    if kind != FrameType::Data && !data.is_empty() {
        return Err(format!("{} bytes of data on a {kind:?} frame", data.len()));
    }
    Ok(match kind {
        FrameType::Data => StreamFrame::Data {
            stream_id,
            source_stream_id: source()?,
            has_continuation: meta.has_continuation.unwrap_or(false),
            data,
        },
        // A total that is absent counts as 0, which moves no window (as brpc's).
        FrameType::Feedback => StreamFrame::Feedback {
            stream_id,
            source_stream_id: meta.source_stream_id.unwrap_or(0),
            consumed_size: meta
                .feedback
                .as_ref()
                .and_then(|f| f.consumed_size)
                .unwrap_or(0),
        },
        FrameType::Close => StreamFrame::Close {
            stream_id,
            source_stream_id: source()?,
        },
        FrameType::Rst => StreamFrame::Rst { stream_id },
        FrameType::Unknown => unreachable!("filtered above"),
    })
}

/// The DATA frames of one message from stream `source_stream_id` to `stream_id`: one frame,
/// or (for a message over `max_segment_size` bytes) consecutive segments of at most that size,
/// all but the last with `has_continuation`, as brpc's `StreamWrite` splits them (a segment
/// size over [`MAX_DATA_LEN`] counts as that). An empty message is one empty frame.
///
/// ```
/// use brisk::protocol::streaming_rpc::{segments, StreamFrame};
/// use bytes::Bytes;
/// let frames: Vec<_> = segments(0, 0, Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"), 10).collect();
/// assert_eq!(frames.len(), 3);
/// assert_eq!(frames[2].data(), b"uvwxyz");
/// ```
pub fn segments(
    stream_id: i64,
    source_stream_id: i64,
    message: Bytes,
    max_segment_size: usize,
) -> impl Iterator<Item = StreamFrame> {
    let max_segment_size = max_segment_size.clamp(1, MAX_DATA_LEN);
    let mut rest = Some(message);
    std::iter::from_fn(move || {
        let mut message = rest.take()?;
        let data = if message.len() > max_segment_size {
            let head = message.split_to(max_segment_size);
            rest = Some(message);
            head
        } else {
            message
        };
        Some(StreamFrame::Data {
            stream_id,
            source_stream_id,
            has_continuation: rest.is_some(),
            data,
        })
    })
}

/// Reassembles messages from DATA frames: the data of consecutive frames up to one without
/// `has_continuation` is one message, of at most the limit given (brpc sets none, so a peer
/// that never ends a message could fill its memory).
#[derive(Debug)]
pub struct Reassembly {
    /// The segments of the message so far, when it has more than one.
    pending: Option<BytesMut>,
    /// The largest message accepted.
    max_message_size: usize,
}

impl Reassembly {
    /// Reassembles messages of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Reassembly {
            pending: None,
            max_message_size,
        }
    }

    /// Adds a DATA frame's `data`; the whole message when this frame ends it. A message of
    /// one frame is handed back without copying. A message growing past the limit is an error
    /// (and is dropped).
    ///
    /// ```
    /// use brisk::protocol::streaming_rpc::Reassembly;
    /// use bytes::Bytes;
    /// let mut messages = Reassembly::new(1024);
    /// assert_eq!(messages.push(Bytes::from_static(b"abc"), true), Ok(None));
    /// let whole = messages.push(Bytes::from_static(b"def"), false).unwrap();
    /// assert_eq!(whole.as_deref(), Some(&b"abcdef"[..]));
    /// ```
    pub fn push(
        &mut self,
        data: Bytes,
        has_continuation: bool,
    ) -> Result<Option<Bytes>, FrameError> {
        let size = self.pending_len().saturating_add(data.len());
        if size > self.max_message_size {
            self.pending = None;
            return Err(FrameError::TooBig {
                body_size: size,
                max_body_size: self.max_message_size,
            });
        }
        Ok(match (self.pending.as_mut(), has_continuation) {
            (None, false) => Some(data),
            (None, true) => {
                self.pending = Some(BytesMut::from(&data[..]));
                None
            }
            (Some(pending), true) => {
                pending.extend_from_slice(&data);
                None
            }
            (Some(pending), false) => {
                pending.extend_from_slice(&data);
                self.pending.take().map(BytesMut::freeze)
            }
        })
    }

    /// The bytes of the unfinished message held so far.
    pub fn pending_len(&self) -> usize {
        self.pending.as_ref().map_or(0, BytesMut::len)
    }
}

/// brpc's default `StreamOptions.max_buf_size`: how many bytes a sender may have written that
/// its peer has not yet reported consumed.
pub const DEFAULT_MAX_BUF_SIZE: u64 = 2 * 1024 * 1024;

/// The sender's side of a stream's flow control, as brpc's `Stream` keeps it: bytes written
/// against the running total the receiver reports in FEEDBACK frames. A write is refused while
/// the unconsumed bytes have reached the window, so a sender overshoots it by at most one
/// message, as brpc's (a message larger than the window still goes out, alone).
///
/// ```
/// use brisk::protocol::streaming_rpc::SendWindow;
/// let mut window = SendWindow::new(100);
/// assert!(window.try_write(60));
/// assert!(window.try_write(60)); // 60 < 100: allowed, now 120 unconsumed
/// assert!(!window.try_write(1)); // full
/// assert!(window.on_feedback(30)); // 90 unconsumed: writable again
/// assert!(window.try_write(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// The most unconsumed bytes before writes wait; 0 is no limit (brpc's `max_buf_size <= 0`).
    window: u64,
    /// Bytes written so far.
    produced: u64,
    /// The receiver's latest consumed total.
    remote_consumed: u64,
}

impl SendWindow {
    /// A window of `window` bytes (0: no limit, and the peer is asked for no feedback).
    pub fn new(window: u64) -> Self {
        SendWindow {
            window,
            produced: 0,
            remote_consumed: 0,
        }
    }

    /// Whether the peer must report what it consumed (`StreamSettings.need_feedback`).
    pub fn needs_feedback(&self) -> bool {
        self.window > 0
    }

    /// Whether a write would be refused now.
    pub fn is_full(&self) -> bool {
        self.window > 0 && self.produced >= self.remote_consumed.saturating_add(self.window)
    }

    /// Counts a message of `len` bytes as written, unless the window is full (then nothing
    /// changes and the writer waits for feedback).
    pub fn try_write(&mut self, len: u64) -> bool {
        if self.is_full() {
            return false;
        }
        self.produced = self.produced.saturating_add(len);
        true
    }

    /// Takes back a write that did not go out (its connection failed), as brpc's
    /// `RollbackProduced`.
    pub fn roll_back(&mut self, len: u64) {
        self.produced = self.produced.saturating_sub(len);
    }

    /// Records a FEEDBACK total; a stale or repeated total (not above the last) is ignored.
    /// True when this makes a full window writable again.
    pub fn on_feedback(&mut self, consumed_size: i64) -> bool {
        let consumed = u64::try_from(consumed_size).unwrap_or(0);
        if consumed <= self.remote_consumed {
            return false;
        }
        let was_full = self.is_full();
        self.remote_consumed = consumed;
        was_full && !self.is_full()
    }

    /// Bytes written and not yet reported consumed.
    pub fn unconsumed(&self) -> u64 {
        self.produced.saturating_sub(self.remote_consumed)
    }
}

/// The receiver's side: the running total of message bytes the user has consumed, which
/// FEEDBACK frames carry when the sender asked for them.
///
/// ```
/// use brisk::protocol::streaming_rpc::ConsumedCounter;
/// let mut consumed = ConsumedCounter::default();
/// assert_eq!(consumed.consume(26), 26);
/// assert_eq!(consumed.consume(10), 36); // brpc's capture: 26, then 36
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumedCounter {
    total: i64,
}

impl ConsumedCounter {
    /// Counts `len` more bytes consumed; the new total, for the FEEDBACK frame.
    pub fn consume(&mut self, len: u64) -> i64 {
        self.total = self
            .total
            .saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
        self.total
    }

    /// The total so far.
    pub fn total(&self) -> i64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: &StreamFrame) -> StreamFrame {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let decoded = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(buf.is_empty());
        match decoded {
            Decoded::Frame(frame) => frame,
            Decoded::Malformed(bad) => panic!("{bad:?}"),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for frame in [
            StreamFrame::Data {
                stream_id: 1 << 40,
                source_stream_id: -1,
                has_continuation: true,
                data: Bytes::from_static(b"x"),
            },
            StreamFrame::Feedback {
                stream_id: 0,
                source_stream_id: 146,
                consumed_size: 72,
            },
            StreamFrame::Close {
                stream_id: 146,
                source_stream_id: 0,
            },
            StreamFrame::Rst { stream_id: 5 },
        ] {
            assert_eq!(round_trip(&frame), frame);
        }
    }

    #[test]
    fn partial_frames_wait_foreign_and_huge_ones_are_errors() {
        let mut whole = BytesMut::new();
        StreamFrame::Close {
            stream_id: 1,
            source_stream_id: 2,
        }
        .encode(&mut whole);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(decode_frame(&mut part, 1 << 20), Ok(None), "{cut}");
        }
        let mut bad = BytesMut::from(&b"PRPC\0\0\0\0\0\0\0\0"[..]);
        assert!(matches!(
            decode_frame(&mut bad, 1 << 20),
            Err(FrameError::BadMagic(_))
        ));
        let mut big = BytesMut::from(&b"STRM\xff\xff\xff\xff\0\0\0\0"[..]);
        assert!(matches!(
            decode_frame(&mut big, 1 << 20),
            Err(FrameError::TooBig { .. })
        ));
    }

    /// A frame with `meta` and `data`.
    fn raw_frame(meta: &[u8], data: &[u8]) -> BytesMut {
        let mut frame = BytesMut::from(&b"STRM"[..]);
        frame.put_u32((meta.len() + data.len()) as u32);
        frame.put_u32(meta.len() as u32);
        frame.put_slice(meta);
        frame.put_slice(data);
        frame
    }

    #[test]
    fn malformed_frames_are_cut_off_and_reported_with_brpcs_reply() {
        let malformed = |mut buf: BytesMut| match decode_frame(&mut buf, 1 << 20) {
            Ok(Some(Decoded::Malformed(bad))) => {
                assert!(buf.is_empty(), "the whole frame is cut off");
                bad
            }
            other => panic!("{other:?}"),
        };
        // meta_size over body_size, and a meta that does not decode: nobody to answer.
        let mut over = BytesMut::from(&b"STRM\0\0\0\x01\0\0\0\x02"[..]);
        over.put_u8(0);
        assert_eq!(malformed(over).reset_reply(), None);
        assert_eq!(malformed(raw_frame(b"\xff", b"")).reset_reply(), None);
        // A frame type brpc does not have, and a CLOSE with data: RST to the sender.
        for (meta, data) in [
            (&b"\x08\x01\x10\x02\x18\x09"[..], &b""[..]),
            (b"\x08\x01\x10\x02\x18\x02", b"x"),
        ] {
            let bad = malformed(raw_frame(meta, data));
            assert_eq!(bad.reset_reply(), Some(StreamFrame::Rst { stream_id: 2 }));
        }
        // A DATA without its sender: nobody to answer.
        assert_eq!(
            malformed(raw_frame(b"\x08\x01\x18\x03", b"")).reset_reply(),
            None
        );
        // A FEEDBACK without its total counts as 0, as brpc reads it.
        let mut feedback = raw_frame(b"\x08\x01\x10\x02\x18\x04", b"");
        assert_eq!(
            decode_frame(&mut feedback, 1 << 20),
            Ok(Some(Decoded::Frame(StreamFrame::Feedback {
                stream_id: 1,
                source_stream_id: 2,
                consumed_size: 0
            })))
        );
    }

    #[test]
    fn segments_reassemble_into_the_message() {
        let message = Bytes::from(vec![7u8; 1000]);
        let mut messages = Reassembly::new(1000);
        let mut out = Vec::new();
        for frame in segments(1, 2, message.clone(), 64) {
            let StreamFrame::Data {
                data,
                has_continuation,
                ..
            } = frame
            else {
                unreachable!()
            };
            assert!(data.len() <= 64);
            out.extend(messages.push(data, has_continuation).unwrap());
        }
        assert_eq!(out, [message]);
        assert_eq!(messages.pending_len(), 0);
        // A message that grows past the limit is refused, and what was held is let go.
        let mut small = Reassembly::new(5);
        assert_eq!(small.push(Bytes::from_static(b"abc"), true), Ok(None));
        assert!(small.push(Bytes::from_static(b"def"), true).is_err());
        assert_eq!(small.pending_len(), 0);
        let empty: Vec<_> = segments(1, 2, Bytes::new(), 64).collect();
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn the_window_holds_a_stalled_consumer_to_one_message_past_it() {
        let mut window = SendWindow::new(DEFAULT_MAX_BUF_SIZE);
        assert!(window.needs_feedback());
        let mut written = 0;
        while window.try_write(64 * 1024) {
            written += 64 * 1024;
        }
        assert_eq!(written, DEFAULT_MAX_BUF_SIZE);
        assert!(window.is_full());
        // A stale total changes nothing; a new one opens the window by what it reports.
        assert!(!window.on_feedback(0));
        assert!(window.on_feedback(64 * 1024));
        assert_eq!(window.unconsumed(), DEFAULT_MAX_BUF_SIZE - 64 * 1024);
        assert!(!window.on_feedback(64 * 1024));
        assert!(
            window.try_write(10 * 1024 * 1024),
            "one message may overshoot"
        );
        assert!(!window.try_write(1));
        window.roll_back(10 * 1024 * 1024);
        assert!(window.try_write(1));
        // No window: never full, no feedback wanted; negative totals are ignored.
        let mut unlimited = SendWindow::new(0);
        assert!(!unlimited.needs_feedback());
        assert!(unlimited.try_write(u64::MAX) && unlimited.try_write(u64::MAX));
        assert!(!unlimited.on_feedback(-5));
    }
}
