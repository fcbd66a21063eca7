//! A connection's streams: where the reader routes each `STRM` frame, and what fails them all
//! when the connection ends.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

pub(crate) use super::core::KeepAlive;
use super::core::{frame, StreamCore, StreamMap};
use super::options::StreamOptions;
use crate::protocol::streaming_rpc::StreamSetup;
use crate::protocol::streaming_rpc::{decode_frame, Decoded, FrameError, StreamFrame, MAGIC};
use crate::transport::writer::FrameSender;
use crate::{errno, Status};

/// The streams on one connection, by id.
pub(crate) struct StreamTable {
    streams: Arc<StreamMap>,
    sender: FrameSender,
    remote_addr: SocketAddr,
}

impl std::fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTable")
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

/// What [`StreamTable::read_frame`] did.
pub(crate) enum Routed {
    /// The frame has not all arrived.
    NeedMore,
    /// The frame went to its stream (or was answered, or dropped).
    Done,
    /// The frame completed the reply to the call that opened a client stream: the reader
    /// decodes it with the connection's codec, then tells the stream
    /// ([`StreamCore::on_reply`]).
    Reply(Arc<StreamCore>, Bytes),
}

/// What the front of a read buffer holds, for a connection that carries streams.
pub(crate) enum Front {
    /// A `STRM` frame, or the start of one.
    Stream,
    /// Too few bytes to tell.
    NeedMore,
    /// The connection's own protocol.
    Other,
}

/// Whether `buf` starts with a `STRM` frame.
pub(crate) fn front(buf: &[u8]) -> Front {
    let n = buf.len().min(MAGIC.len());
    if buf[..n] != MAGIC[..n] {
        Front::Other
    } else if n == MAGIC.len() {
        Front::Stream
    } else {
        Front::NeedMore
    }
}

impl StreamTable {
    /// The streams of the connection that `sender` writes to.
    pub(crate) fn new(sender: FrameSender, remote_addr: SocketAddr) -> Arc<Self> {
        Arc::new(StreamTable {
            streams: Arc::default(),
            sender,
            remote_addr,
        })
    }

    /// Whether no stream is open on the connection.
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Puts `core` on this connection: a client stream its call offers (`awaiting_reply`), or a
    /// server stream a handler accepted.
    pub(crate) fn attach(
        &self,
        core: &Arc<StreamCore>,
        awaiting_reply: bool,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(), Status> {
        core.attach(
            &self.streams,
            self.sender.clone(),
            self.remote_addr,
            awaiting_reply,
            keep_alive,
        )
    }

    /// Server side: a stream for the caller's `remote`, accepted by a handler.
    pub(crate) fn accept(
        &self,
        remote: StreamSetup,
        options: StreamOptions,
    ) -> Result<Arc<StreamCore>, Status> {
        let core = StreamCore::new(options);
        core.set_remote(remote);
        self.attach(&core, false, None)?;
        Ok(core)
    }

    /// Cuts one `STRM` frame off `buf` and routes it to its stream; `Err` when the
    /// connection must close.
    pub(crate) fn read_frame(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Routed, FrameError> {
        match decode_frame(buf, max_body_size)? {
            None => Ok(Routed::NeedMore),
            Some(Decoded::Frame(StreamFrame::Data {
                stream_id,
                source_stream_id,
                has_continuation,
                data,
            })) => {
                let Some(core) = self.streams.get(stream_id) else {
                    self.reset(stream_id, source_stream_id);
                    return Ok(Routed::Done);
                };
                // The DATA frames for the same stream that follow, already here, go with this
                // one: one lookup, one lock and one wake-up for the run.
                let mut after = None;
                let reply = core.on_data_run((data, has_continuation), || {
                    if !matches!(front(buf), Front::Stream) {
                        return None;
                    }
                    match decode_frame(buf, max_body_size) {
                        Ok(Some(Decoded::Frame(StreamFrame::Data {
                            stream_id: next,
                            has_continuation,
                            data,
                            ..
                        }))) if next == stream_id => Some((data, has_continuation)),
                        Ok(None) => None,
                        decoded => {
                            after = Some(decoded);
                            None
                        }
                    }
                });
                if let Some(reply) = reply {
                    return Ok(Routed::Reply(core, reply));
                }
                match after {
                    None => Ok(Routed::Done),
                    Some(Err(e)) => Err(e),
                    Some(Ok(decoded)) => Ok(self.route_decoded(decoded)),
                }
            }
            other => Ok(self.route_decoded(other)),
        }
    }

    /// Routes one decoded frame (a bad one is dropped, RST to its sender if it names one).
    fn route_decoded(&self, decoded: Option<Decoded>) -> Routed {
        match decoded {
            None => Routed::Done,
            Some(Decoded::Malformed(bad)) => {
                tracing::warn!(remote = %self.remote_addr, "dropped a bad STRM frame: {}", bad.reason);
                if let Some(rst) = bad.reset_reply() {
                    let _ = self.sender.send(frame(&rst));
                }
                Routed::Done
            }
            Some(Decoded::Frame(stream_frame)) => match self.route(stream_frame) {
                Some((stream, reply)) => Routed::Reply(stream, reply),
                None => Routed::Done,
            },
        }
    }

    /// RST to the sender of a DATA frame for a stream that is not here.
    fn reset(&self, stream_id: i64, source_stream_id: i64) {
        tracing::debug!(remote = %self.remote_addr, "a frame for unknown stream {stream_id}: RST");
        let _ = self.sender.send(frame(&StreamFrame::Rst {
            stream_id: source_stream_id,
        }));
    }

    /// Hands a frame to its stream; RST to the sender of one for a stream that is not here.
    fn route(&self, stream_frame: StreamFrame) -> Option<(Arc<StreamCore>, Bytes)> {
        let Some(core) = self.streams.get(stream_frame.stream_id()) else {
            if let Some(rst) = stream_frame.reset_reply() {
                tracing::debug!(remote = %self.remote_addr, "a frame for unknown stream {}: RST", stream_frame.stream_id());
                let _ = self.sender.send(frame(&rst));
            }
            return None;
        };
        match stream_frame {
            StreamFrame::Data {
                has_continuation,
                data,
                ..
            } => core
                .on_data_run((data, has_continuation), || None)
                .map(|reply| (core, reply)),
            StreamFrame::Feedback { consumed_size, .. } => {
                core.on_feedback(consumed_size);
                None
            }
            StreamFrame::Close { .. } => {
                core.on_close();
                None
            }
            StreamFrame::Rst { .. } => {
                // brpc's words.
                core.fail(Status::new(errno::ECONNRESET, "Received RST frame"));
                None
            }
        }
    }

    /// Fails every stream: the connection ended.
    pub(crate) fn fail_all(&self, status: &Status) {
        for core in self.streams.close() {
            core.fail(status.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::transport::stream_rpc::{Stream, StreamHandler, StreamOptions, StreamWriter};
    use crate::transport::writer::{self, FrameReceiver};

    const PEER: i64 = 146;

    /// A server-side stream accepted from peer stream 146 and set up, on a connection whose
    /// frames the test reads.
    fn accepted(
        options: StreamOptions,
        peer_reads: bool,
    ) -> (Arc<StreamTable>, Stream, FrameReceiver) {
        let (sender, queue) = writer::queue();
        let table = StreamTable::new(sender, "127.0.0.1:1".parse().unwrap());
        let remote = StreamSetup {
            stream_id: PEER,
            need_feedback: true,
            writable: peer_reads,
        };
        let core = table.accept(remote, options).unwrap();
        core.connect();
        (table, Stream::from_core(core), queue)
    }

    /// Feeds the table a frame as its connection's reader would.
    fn arrive(table: &StreamTable, frame: StreamFrame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        assert!(matches!(
            table.read_frame(&mut buf, 1 << 20),
            Ok(Routed::Done)
        ));
        assert!(buf.is_empty());
    }

    fn data(to: i64, message: &'static [u8]) -> StreamFrame {
        StreamFrame::Data {
            stream_id: to,
            source_stream_id: PEER,
            has_continuation: false,
            data: Bytes::from_static(message),
        }
    }

    /// The frames written so far.
    fn written(queue: &mut FrameReceiver) -> Vec<StreamFrame> {
        std::iter::from_fn(|| queue.try_recv())
            .map(|frame| {
                let frame = frame.expect("not a close");
                let mut buf = BytesMut::from(&frame.head[..]);
                buf.extend_from_slice(&frame.payload);
                match decode_frame(&mut buf, 1 << 20).unwrap().unwrap() {
                    Decoded::Frame(frame) => frame,
                    Decoded::Malformed(bad) => panic!("{bad:?}"),
                }
            })
            .collect()
    }

    fn feedback(id: i64, consumed_size: i64) -> StreamFrame {
        StreamFrame::Feedback {
            stream_id: PEER,
            source_stream_id: id,
            consumed_size,
        }
    }

    #[tokio::test]
    async fn a_reader_reports_consumption_once_it_has_caught_up() {
        let (table, mut stream, mut queue) = accepted(StreamOptions::default(), true);
        let id = stream.id();
        arrive(&table, data(id, b"abcdefghijklmnopqrstuvwxyz"));
        arrive(&table, data(id, b"0123456789"));
        assert_eq!(
            &stream.recv().await.unwrap().unwrap()[..],
            b"abcdefghijklmnopqrstuvwxyz"
        );
        assert!(
            written(&mut queue).is_empty(),
            "more is waiting: no report yet"
        );
        assert_eq!(&stream.recv().await.unwrap().unwrap()[..], b"0123456789");
        assert_eq!(written(&mut queue), [feedback(id, 36)]);
    }

    #[tokio::test]
    async fn a_run_of_frames_is_routed_in_one_go_and_stops_at_other_bytes() {
        let (table, mut stream, mut queue) = accepted(StreamOptions::default(), true);
        let id = stream.id();
        let mut buf = BytesMut::new();
        for frame in [
            data(id, b"a"),
            data(id, b"b"),
            data(999, b"x"), // not here: RST
            data(id, b"c"),
        ] {
            frame.encode(&mut buf);
        }
        buf.extend_from_slice(b"PRPC"); // the connection's own protocol after them
        while matches!(front(&buf), Front::Stream) {
            assert!(matches!(
                table.read_frame(&mut buf, 1 << 20),
                Ok(Routed::Done)
            ));
        }
        assert_eq!(&buf[..], b"PRPC");
        for expected in [&b"a"[..], b"b", b"c"] {
            assert_eq!(&stream.recv().await.unwrap().unwrap()[..], expected);
        }
        let frames = written(&mut queue);
        assert_eq!(frames[0], StreamFrame::Rst { stream_id: PEER });
    }

    #[tokio::test]
    async fn sends_follow_the_window_and_the_peers_feedback() {
        let options = StreamOptions::default().max_buf_size(30);
        let (table, stream, mut queue) = accepted(options, true);
        let id = stream.id();
        stream
            .try_send(Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"))
            .unwrap();
        stream.try_send(Bytes::from_static(b"0123456789")).unwrap(); // 26 < 30: one more
        let full = stream.try_send(Bytes::from_static(b"!")).unwrap_err();
        assert_eq!(full.code(), crate::errno::EAGAIN);
        assert_eq!(written(&mut queue).len(), 2);
        arrive(
            &table,
            StreamFrame::Feedback {
                stream_id: id,
                source_stream_id: PEER,
                consumed_size: 26,
            },
        );
        stream.try_send(Bytes::from_static(b"!")).unwrap();
        assert_eq!(stream.unconsumed(), 11);
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_cannot_be_written_to() {
        let (_table, stream, _queue) = accepted(StreamOptions::default(), false);
        let status = stream.send(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(status.code(), crate::errno::EBADF);
        assert_eq!(
            status.message(),
            format!(
                "The remote side of Stream={}->146@127.0.0.1:1 doesn't have a handler",
                stream.id()
            )
        );
    }

    #[tokio::test]
    async fn close_is_answered_by_close_and_reset_fails_the_stream() {
        let (table, mut stream, mut queue) = accepted(StreamOptions::default(), true);
        let id = stream.id();
        arrive(
            &table,
            StreamFrame::Close {
                stream_id: id,
                source_stream_id: PEER,
            },
        );
        assert_eq!(
            written(&mut queue),
            [StreamFrame::Close {
                stream_id: PEER,
                source_stream_id: id
            }]
        );
        assert!(stream.recv().await.is_none());
        // Now unknown here: a DATA frame for it is reset, a FEEDBACK is not.
        arrive(&table, data(id, b"late"));
        arrive(&table, feedback(PEER, 1));
        assert_eq!(written(&mut queue), [StreamFrame::Rst { stream_id: PEER }]);

        let (table, mut stream, mut queue) = accepted(StreamOptions::default(), true);
        arrive(
            &table,
            StreamFrame::Rst {
                stream_id: stream.id(),
            },
        );
        let status = stream.recv().await.unwrap().unwrap_err();
        assert_eq!(status.code(), crate::errno::ECONNRESET);
        assert_eq!(status.message(), "Received RST frame");
        assert!(stream.recv().await.is_none(), "the error is given once");
        // brpc's OnFailed tells a connected peer CLOSE, whatever the reason.
        assert_eq!(
            written(&mut queue),
            [StreamFrame::Close {
                stream_id: PEER,
                source_stream_id: stream.id()
            }]
        );
    }

    #[tokio::test]
    async fn no_stream_goes_on_a_connection_that_ended() {
        let (table, stream, _queue) = accepted(StreamOptions::default(), true);
        table.fail_all(&Status::new(crate::errno::EEOF, "gone"));
        assert!(stream.is_closed());
        let remote = StreamSetup {
            stream_id: PEER,
            need_feedback: true,
            writable: true,
        };
        // A handler still running accepts after its connection ended: refused, not left hanging.
        let status = table.accept(remote, StreamOptions::default()).unwrap_err();
        assert_eq!(status.code(), crate::errno::EFAILEDSOCKET, "{status}");
    }

    /// What a handler was told, in order.
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl StreamHandler for Recorder {
        fn on_received_messages(&self, _stream: &StreamWriter, messages: &[Bytes]) {
            let batch: Vec<_> = messages
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect();
            self.0.lock().unwrap().push(batch.join("+"));
        }
        fn on_idle_timeout(&self, _stream: &StreamWriter) {
            self.0.lock().unwrap().push("idle".into());
        }
        fn on_closed(&self, _stream: &StreamWriter, error: Option<&Status>) {
            let what = error.map_or("closed".into(), |e| format!("failed: {}", e.message()));
            self.0.lock().unwrap().push(what);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_gets_batches_idleness_and_the_end() {
        let options = StreamOptions::default()
            .messages_in_batch(2)
            .idle_timeout(Duration::from_secs(1));
        let (table, stream, mut queue) = accepted(options, true);
        let id = stream.id();
        let recorder = Recorder::default();
        arrive(&table, data(id, b"a"));
        arrive(&table, data(id, b"bb"));
        arrive(&table, data(id, b"ccc"));
        let writer = stream.handle_with(recorder.clone());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // Consumed as each batch was handled: brpc's feedback after each.
        assert_eq!(written(&mut queue), [feedback(id, 3), feedback(id, 6)]);
        arrive(&table, data(id, b"d"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        arrive(&table, StreamFrame::Rst { stream_id: id });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                "a+bb",
                "ccc",
                "idle",
                "idle",
                "d",
                "failed: Received RST frame"
            ]
        );
        assert!(writer.is_closed());
    }
}
