//! One stream's state, shared by its handles and its connection's reader: the flow-control
//! window of what it sends, the messages it has received and not yet handed out, and how it
//! ended. Every change happens under one short lock; the frames a change produces go to the
//! connection's batching writer before the lock is let go, so they keep their order.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::options::StreamOptions;
use crate::protocol::streaming_rpc::{
    encode_data_head, segments, ConsumedCounter, Reassembly, SendWindow, StreamFrame, StreamSetup,
};
use crate::protocol::{OutFrame, Payload};
use crate::transport::id_hasher::IdHasher;
use crate::transport::writer::FrameSender;
use crate::{errno, Status};

/// Messages up to this size are copied behind their frame's head (one buffer for the writer);
/// larger ones go out as they are.
const INLINE_DATA: usize = 1024;

/// The most a DATA frame's header and meta take: 12 bytes of header, and a meta of two
/// ten-byte varint ids, a type and a flag.
const MAX_HEAD_LEN: usize = 12 + 2 * 11 + 2 + 2;

/// How much a stream's frame arena grows by: from 512 bytes, doubling up to 16 KiB.
const ARENA_CHUNK: usize = 16 * 1024;
const MIN_ARENA_CHUNK: usize = 512;

/// Stream ids, unique in the process (brpc's are too: they name streams across connections).
static NEXT_STREAM_ID: AtomicI64 = AtomicI64::new(1);

/// A stream's state.
pub(crate) struct StreamCore {
    id: i64,
    options: StreamOptions,
    state: Mutex<State>,
    /// Wakes writers waiting for the connection, the window, or the end.
    changed: Notify,
}

impl std::fmt::Debug for StreamCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCore").field("id", &self.id).finish()
    }
}

/// The streams of one connection, by id: what a stream leaves when it ends.
#[derive(Default)]
pub(crate) struct StreamMap(Mutex<MapState>);

#[derive(Default)]
struct MapState {
    streams: HashMap<i64, Arc<StreamCore>, BuildHasherDefault<IdHasher>>,
    /// The connection has ended: no stream goes on it any more.
    closed: bool,
}

impl StreamMap {
    fn lock(&self) -> MutexGuard<'_, MapState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether no stream is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().streams.is_empty()
    }

    /// Adds a stream; false once the connection has ended.
    fn insert(&self, core: &Arc<StreamCore>) -> bool {
        let mut map = self.lock();
        if !map.closed {
            map.streams.insert(core.id, Arc::clone(core));
        }
        !map.closed
    }

    pub(crate) fn remove(&self, id: i64) {
        self.lock().streams.remove(&id);
    }

    pub(crate) fn get(&self, id: i64) -> Option<Arc<StreamCore>> {
        self.lock().streams.get(&id).cloned()
    }

    /// Takes every stream out, for good: the connection has ended.
    pub(crate) fn close(&self) -> Vec<Arc<StreamCore>> {
        let mut map = self.lock();
        map.closed = true;
        map.streams.drain().map(|(_, core)| core).collect()
    }
}

/// What keeps a client stream's connection open while the stream lives (brpc's stream holds
/// its host socket).
pub(crate) type KeepAlive = Arc<dyn std::any::Any + Send + Sync>;

/// The connection a stream lives on.
struct Link {
    sender: FrameSender,
    table: Weak<StreamMap>,
    remote_addr: SocketAddr,
    _keep_alive: Option<KeepAlive>,
}

struct State {
    link: Option<Link>,
    /// The peer's stream, once known (the server knows it from the request; the client from
    /// the reply).
    remote: Option<StreamSetup>,
    /// Whether messages may go out: the reply that set the stream up has been queued (server)
    /// or received (client).
    connected: bool,
    /// Client side: the next message on the stream is the reply to the call that opened it.
    awaiting_reply: bool,
    window: SendWindow,
    reassembly: Reassembly,
    incoming: VecDeque<Bytes>,
    consumed: ConsumedCounter,
    /// Messages handed out since the last FEEDBACK.
    unreported: usize,
    reader: Option<Waker>,
    end: Option<End>,
    /// Where the frames this side sends are written: frames are cut off it, so sending a
    /// message allocates only when it runs out.
    arena: BytesMut,
    /// How much the arena grew by last.
    arena_chunk: usize,
    /// Closed by [`StreamCore::finish`], which waits for the peer's CLOSE in answer: the
    /// stream stays in its connection's table until then.
    awaiting_close: bool,
}

/// How a stream ended.
#[derive(Clone, Debug)]
pub(crate) enum End {
    /// This side closed it.
    Closed,
    /// The peer closed it (its messages sent before still arrive).
    ClosedByPeer,
    /// It failed: a reset, a broken connection, a call that did not set it up.
    Failed(Status),
}

/// What became of a DATA frame's segment.
enum Taken {
    /// It completed the reply to the call that opened the stream.
    Reply(Bytes),
    /// It completed a message, now waiting for the reader.
    Queued,
    /// It was part of a message, or dropped.
    Nothing,
}

/// What [`StreamCore::try_send`] did.
pub(crate) enum Sent {
    /// The message is queued for the connection.
    Queued,
    /// Not yet connected, or the window is full: wait for a change.
    Wait,
}

impl StreamCore {
    /// A new stream, not yet on a connection.
    pub(crate) fn new(options: StreamOptions) -> Arc<Self> {
        Arc::new(StreamCore {
            id: NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State {
                link: None,
                remote: None,
                connected: false,
                awaiting_reply: false,
                window: SendWindow::new(options.max_buf_size),
                reassembly: Reassembly::new(options.max_message_size),
                incoming: VecDeque::new(),
                consumed: ConsumedCounter::default(),
                unreported: 0,
                reader: None,
                end: None,
                arena: BytesMut::new(),
                arena_chunk: 0,
                awaiting_close: false,
            }),
            options,
            changed: Notify::new(),
        })
    }

    pub(crate) fn options(&self) -> &StreamOptions {
        &self.options
    }

    /// The stream's id, as its peer addresses it.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// This side's settings, as a call or reply announces them.
    pub(crate) fn setup(&self) -> StreamSetup {
        StreamSetup {
            stream_id: self.id,
            need_feedback: self.options.max_buf_size > 0,
            writable: self.options.accept_messages,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the reader and every waiting writer.
    fn wake_all(&self, state: &mut State) {
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
        self.changed.notify_waiters();
    }

    /// Puts the stream on a connection: a client stream for the one attempt of the call that
    /// offers it, or a server stream a handler accepted.
    pub(crate) fn attach(
        self: &Arc<Self>,
        table: &Arc<StreamMap>,
        sender: FrameSender,
        remote_addr: SocketAddr,
        awaiting_reply: bool,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(), Status> {
        let mut state = self.lock();
        if let Some(end) = &state.end {
            return Err(end_status(self.id, end));
        }
        if state.connected {
            return Err(Status::new(
                errno::EINVAL,
                format!(
                    "stream {} is set up already: a stream is offered by one call",
                    self.id
                ),
            ));
        }
        if let Some(old) = state.link.take().and_then(|link| link.table.upgrade()) {
            old.remove(self.id);
        }
        // Under the stream's lock, so that a close cannot slip between the two.
        if !table.insert(self) {
            return Err(broken(Some(remote_addr)));
        }
        state.link = Some(Link {
            sender,
            table: Arc::downgrade(table),
            remote_addr,
            _keep_alive: keep_alive,
        });
        state.awaiting_reply = awaiting_reply;
        Ok(())
    }

    /// Server side: the peer's stream, known from the request.
    pub(crate) fn set_remote(&self, remote: StreamSetup) {
        self.lock().remote = Some(remote);
    }

    /// Lets messages go out: the server's reply is queued ahead of them.
    pub(crate) fn connect(&self) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.connected = true;
        }
        self.wake_all(&mut state);
    }

    /// Client side: the reply to the call that opened the stream arrived, announcing the
    /// server's stream (`server`) or not. As brpc's `HandleStreamConnection`: a successful
    /// call whose server did not accept the stream fails (EREQUEST `The server didn't accept
    /// the stream`), and so does one whose stream was closed meanwhile; the stream fails with a
    /// failed call's error, and an accepted server stream is then reset.
    pub(crate) fn on_reply(
        &self,
        server: Option<StreamSetup>,
        result: &mut Result<Payload, Status>,
    ) {
        let mut state = self.lock();
        state.awaiting_reply = false;
        if result.is_ok() {
            if server.is_none() {
                *result = Err(Status::new(
                    errno::EREQUEST,
                    "The server didn't accept the stream",
                ));
            } else if state.end.is_some() {
                *result = Err(Status::new(
                    errno::EREQUEST,
                    format!("Request stream={} was closed before responded", self.id),
                ));
            }
        }
        match (&*result, server) {
            (Ok(_), Some(server)) => {
                state.remote = Some(server);
                state.connected = true;
                self.wake_all(&mut state);
            }
            (Err(status), server) => {
                if let (Some(server), Some(link)) = (server, &state.link) {
                    let _ = link.sender.send(frame(&StreamFrame::Rst {
                        stream_id: server.stream_id,
                    }));
                }
                if state.end.is_none() {
                    self.finish(&mut state, End::Failed(status.clone()));
                }
            }
            (Ok(_), None) => unreachable!("made an error above"),
        }
    }

    /// Client side, after an attempt the server answered: a reply that did not come on the
    /// stream (a server that ignores streams answers with a bare frame) did not accept it, as
    /// brpc words it; the call fails with that.
    pub(crate) fn after_reply(&self) -> Option<Status> {
        let mut state = self.lock();
        if !std::mem::take(&mut state.awaiting_reply) {
            return None;
        }
        let status = Status::new(errno::EREQUEST, "The server didn't accept the stream");
        if state.end.is_none() {
            self.finish(&mut state, End::Failed(status.clone()));
        }
        Some(status)
    }

    /// After the call that offered the stream: unless the reply set it up, it fails with the
    /// call's error (or, for a call that succeeded without reaching a transport that carries
    /// streams, says so).
    pub(crate) fn settle(&self, call_failed: Option<&Status>) {
        let mut state = self.lock();
        state.awaiting_reply = false;
        if state.end.is_some() {
            return;
        }
        let status = match call_failed {
            // As brpc's HandleStreamConnection: the stream fails with the call's error, even
            // one the reply had set up (the response did not decode, the deadline won the
            // race), and the server's stream is reset.
            Some(status) => status.clone(),
            None if state.connected => return,
            None => Status::new(
                errno::EREQUEST,
                format!("stream {}: the call did not set it up", self.id),
            ),
        };
        if state.connected {
            if let (Some(remote), Some(link)) = (state.remote, &state.link) {
                let _ = link.sender.send(frame(&StreamFrame::Rst {
                    stream_id: remote.stream_id,
                }));
            }
            state.connected = false; // an RST, not a CLOSE
        }
        self.finish(&mut state, End::Failed(status));
    }

    /// Queues `message` if the stream is connected and its window open.
    pub(crate) fn try_send(&self, message: &Bytes) -> Result<Sent, Status> {
        let mut state = self.lock();
        if let Some(end) = &state.end {
            return Err(end_status(self.id, end));
        }
        if !state.connected {
            return Ok(Sent::Wait);
        }
        let remote = state.remote.expect("a connected stream knows its peer");
        if !remote.writable {
            // brpc's words: its peer has no handler to read with.
            let addr = state.link.as_ref().map(|l| l.remote_addr.to_string());
            return Err(Status::new(
                errno::EBADF,
                format!(
                    "The remote side of Stream={}->{}@{} doesn't have a handler",
                    self.id,
                    remote.stream_id,
                    addr.unwrap_or_default()
                ),
            ));
        }
        if state.link.is_none() {
            return Ok(Sent::Wait);
        }
        let len = message.len() as u64;
        if !state.window.try_write(len) {
            return Ok(Sent::Wait);
        }
        let state = &mut *state;
        let Some(link) = &state.link else {
            unreachable!("checked above")
        };
        let mut queued = true;
        for frame in segments(
            remote.stream_id,
            self.id,
            message.clone(),
            self.options.max_segment_size,
        ) {
            let StreamFrame::Data {
                has_continuation,
                data,
                ..
            } = frame
            else {
                unreachable!("segments are DATA frames")
            };
            // A small message goes out in one piece with its head; a larger one after it,
            // uncopied.
            let inline = data.len() <= INLINE_DATA;
            let room = MAX_HEAD_LEN + if inline { data.len() } else { 0 };
            if state.arena.capacity() - state.arena.len() < room {
                // Small for a stream that sends little, up to ARENA_CHUNK for a busy one.
                state.arena_chunk = (state.arena_chunk * 2).clamp(MIN_ARENA_CHUNK, ARENA_CHUNK);
                state.arena.reserve(state.arena_chunk.max(room));
            }
            encode_data_head(
                &mut state.arena,
                remote.stream_id,
                self.id,
                has_continuation,
                data.len(),
            );
            let out = if inline {
                state.arena.extend_from_slice(&data);
                OutFrame::whole(state.arena.split().freeze())
            } else {
                OutFrame {
                    head: state.arena.split().freeze(),
                    payload: data,
                    attachment: Bytes::new(),
                }
            };
            if link.sender.send(out).is_err() {
                queued = false;
                break;
            }
        }
        if !queued {
            state.window.roll_back(len);
            let status = broken(state.link.as_ref().map(|l| l.remote_addr));
            self.finish(state, End::Failed(status.clone()));
            return Err(status);
        }
        Ok(Sent::Queued)
    }

    /// Waits until something changes for writers; `prepare` runs after the waiter is
    /// registered, so no wake-up is lost between a check and the wait.
    pub(crate) async fn send(&self, message: Bytes) -> Result<(), Status> {
        // The common case: connected, with room in the window.
        if let Sent::Queued = self.try_send(&message)? {
            return Ok(());
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_send(&message)? {
                Sent::Queued => return Ok(()),
                Sent::Wait => changed.await,
            }
        }
    }

    /// The next message, once one has arrived; `None` when the stream has ended (after an
    /// error, which `take_error` reports once).
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, End>>> {
        let mut state = self.lock();
        if let Some(message) = state.incoming.pop_front() {
            let total = state.consumed.consume(message.len() as u64);
            state.unreported += 1;
            let report = state.incoming.is_empty()
                || state.unreported >= self.options.messages_in_batch.max(1);
            if report {
                state.unreported = 0;
                self.send_feedback(&state, total);
            }
            return Poll::Ready(Some(Ok(message)));
        }
        match &state.end {
            Some(end) => Poll::Ready(Some(Err(end.clone()))),
            None => {
                if !state
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Handler side: the messages that have arrived (up to `max`) into `batch`, not yet
    /// counted consumed (see [`consumed`](Self::consumed)); once none are left, how the
    /// stream ended.
    pub(crate) fn poll_batch(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        batch: &mut Vec<Bytes>,
    ) -> Poll<Option<End>> {
        let mut state = self.lock();
        if !state.incoming.is_empty() {
            let take = state.incoming.len().min(max.max(1));
            batch.extend(state.incoming.drain(..take));
            return Poll::Ready(None);
        }
        match &state.end {
            Some(end) => Poll::Ready(Some(end.clone())),
            None => {
                if !state
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Counts `bytes` more consumed and reports the total to the peer (after each batch a
    /// handler took, as brpc).
    pub(crate) fn consumed(&self, bytes: u64) {
        let mut state = self.lock();
        let total = state.consumed.consume(bytes);
        state.unreported = 0;
        self.send_feedback(&state, total);
    }

    /// FEEDBACK with the consumed total, if the peer asked for it.
    fn send_feedback(&self, state: &State, consumed_size: i64) {
        let (Some(remote), Some(link)) = (state.remote, &state.link) else {
            return;
        };
        if !remote.need_feedback || !state.connected || state.end.is_some() {
            return;
        }
        let _ = link.sender.send(frame(&StreamFrame::Feedback {
            stream_id: remote.stream_id,
            source_stream_id: self.id,
            consumed_size,
        }));
    }

    /// Closes the stream from this side: CLOSE to the peer, if it was set up.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if state.end.is_none() {
            self.finish(&mut state, End::Closed);
        }
    }

    /// Closes the stream and waits until the peer has had everything sent before: its CLOSE
    /// in answer to ours (brpc's streams and Brisk's answer CLOSE with CLOSE), an RST, or the
    /// connection's end.
    pub(crate) async fn close_and_wait(&self) {
        {
            let mut state = self.lock();
            if state.end.is_some() {
                return;
            }
            state.awaiting_close = state.connected;
            self.finish(&mut state, End::Closed);
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.lock().awaiting_close {
                return;
            }
            changed.await;
        }
    }

    /// The peer answered a close: [`close_and_wait`](Self::close_and_wait) returns.
    fn closed_by_both(&self, state: &mut State) {
        state.awaiting_close = false;
        if let Some(table) = state.link.take().and_then(|l| l.table.upgrade()) {
            table.remove(self.id);
        }
        self.changed.notify_waiters();
    }

    /// Ends the stream: CLOSE to the peer (if it was set up and the peer has not gone),
    /// out of its connection's table (unless this side waits for the peer's CLOSE), everyone
    /// woken.
    fn finish(&self, state: &mut State, end: End) {
        // brpc's OnFailed: CLOSE to a connected peer whatever the reason (an RST included),
        // unless the connection itself is gone.
        let tell_peer = !matches!(&end, End::Failed(s) if is_broken(s));
        if tell_peer && state.connected {
            if let (Some(remote), Some(link)) = (state.remote, &state.link) {
                let _ = link.sender.send(frame(&StreamFrame::Close {
                    stream_id: remote.stream_id,
                    source_stream_id: self.id,
                }));
            }
        }
        state.end = Some(end);
        state.connected = false;
        state.arena = BytesMut::new();
        if !state.awaiting_close {
            // Nothing more goes out: let go of the connection, whose writer (and socket) lives
            // as long as something can write to it.
            if let Some(table) = state.link.take().and_then(|l| l.table.upgrade()) {
                table.remove(self.id);
            }
        }
        self.wake_all(state);
    }

    /// A run of DATA frames' segments for this stream: `first`, then as many as `next` gives,
    /// all under one lock, with the reader woken once. Returns the reply to the call that
    /// opened a client stream when a segment completes it (what `next` has not given yet
    /// stays where it is).
    pub(crate) fn on_data_run(
        &self,
        first: (Bytes, bool),
        mut next: impl FnMut() -> Option<(Bytes, bool)>,
    ) -> Option<Bytes> {
        let mut state = self.lock();
        let mut queued = false;
        let mut segment = Some(first);
        let mut reply = None;
        while let Some((data, has_continuation)) = segment.take() {
            match self.take_data(&mut state, data, has_continuation) {
                Taken::Reply(message) => {
                    reply = Some(message);
                    break;
                }
                Taken::Queued => queued = true,
                Taken::Nothing => {}
            }
            if state.end.is_some() {
                // The rest of the run is routed frame by frame (RST: the stream is gone).
                break;
            }
            segment = next();
        }
        if queued {
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
        reply
    }

    /// One DATA frame's segment, under the lock.
    fn take_data(&self, state: &mut State, data: Bytes, has_continuation: bool) -> Taken {
        // The reply to the call comes first and whole (brpc writes it as one frame), even to a
        // stream closed meanwhile: its call is waiting for it.
        if state.awaiting_reply && !has_continuation && state.reassembly.pending_len() == 0 {
            state.awaiting_reply = false;
            return Taken::Reply(data);
        }
        if state.end.is_some() {
            return Taken::Nothing;
        }
        let message = match state.reassembly.push(data, has_continuation) {
            Ok(Some(message)) => message,
            Ok(None) => return Taken::Nothing,
            Err(e) => {
                let status = Status::new(errno::ERESPONSE, format!("stream {}: {e}", self.id));
                tracing::warn!("{status}");
                self.finish(state, End::Failed(status));
                return Taken::Nothing;
            }
        };
        if std::mem::take(&mut state.awaiting_reply) {
            return Taken::Reply(message);
        }
        if !self.options.accept_messages {
            // Dropped unread, and reported consumed, as brpc's streams without a handler.
            let total = state.consumed.consume(message.len() as u64);
            self.send_feedback(state, total);
            return Taken::Nothing;
        }
        state.incoming.push_back(message);
        Taken::Queued
    }

    /// A FEEDBACK total from the peer.
    pub(crate) fn on_feedback(&self, consumed_size: i64) {
        let mut state = self.lock();
        if state.window.on_feedback(consumed_size) {
            self.changed.notify_waiters();
        }
    }

    /// The peer closed its stream: messages already here are still handed out; CLOSE goes
    /// back, as brpc answers.
    pub(crate) fn on_close(&self) {
        let mut state = self.lock();
        if state.end.is_none() {
            self.finish(&mut state, End::ClosedByPeer);
        } else if state.awaiting_close {
            self.closed_by_both(&mut state);
        }
    }

    /// The peer reset the stream, or its connection broke.
    pub(crate) fn fail(&self, status: Status) {
        let mut state = self.lock();
        if state.end.is_none() {
            self.finish(&mut state, End::Failed(status));
        } else if state.awaiting_close {
            self.closed_by_both(&mut state);
        }
    }

    /// Bytes written that the peer has not reported consumed.
    pub(crate) fn unconsumed(&self) -> u64 {
        self.lock().window.unconsumed()
    }

    /// Whether the stream has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().end.is_some()
    }
}

/// A whole frame as one buffer.
pub(crate) fn frame(frame: &StreamFrame) -> OutFrame {
    let mut buf = BytesMut::with_capacity(32);
    frame.encode(&mut buf);
    OutFrame::whole(buf.freeze())
}

/// The status a stream's end gives its writers.
pub(crate) fn end_status(id: i64, end: &End) -> Status {
    match end {
        End::Closed => Status::new(errno::EINVAL, format!("stream {id} is closed")),
        End::ClosedByPeer => {
            Status::new(errno::ECLOSE, format!("stream {id} was closed by its peer"))
        }
        End::Failed(status) => status.clone(),
    }
}

/// The error of a stream whose connection is gone.
pub(crate) fn broken(remote: Option<SocketAddr>) -> Status {
    match remote {
        Some(addr) => Status::new(
            errno::EFAILEDSOCKET,
            format!("the connection to {addr} carrying the stream broke"),
        ),
        None => Status::new(errno::EFAILEDSOCKET, "the stream's connection broke"),
    }
}

/// Whether a stream failed with its connection (no CLOSE can reach the peer).
fn is_broken(status: &Status) -> bool {
    matches!(status.code(), errno::EFAILEDSOCKET | errno::EEOF)
}
