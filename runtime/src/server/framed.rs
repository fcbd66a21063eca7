//! The server loop every framed protocol shares (baidu_std, and each registered
//! [`ServerCodec`]): cut requests with the codec, verify the connection's credential on its
//! first request, dispatch each request to its service concurrently with the others, and write
//! the replies through the connection's batching writer — in completion order, or in request
//! order for protocols without a correlation id. A connection's read loop runs on one of the
//! runtime's dispatchers (`transport::dispatcher`), its writer on a task of its own.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::context::StreamOffer;
use super::context::{client_timeout, deadline_after};
use super::dispatch::{
    find_method, panic_message, run_inline_or_spawn, start_handler, RequestTask,
};
use super::protocol::{ServeFuture, ServerProtocol};
use super::registry::{record_answer, Arrival};
use super::state::{
    wait_for_phase, ConnectionGuard, InflightGuard, Peer, Phase, Shared, CLOSE_GRACE,
};
use super::{ServerContext, ServiceResponse};
use crate::auth::AuthContext;
use crate::compress::{self, CompressType};
use crate::protocol::streaming_rpc::StreamSetup;
use crate::protocol::{
    Detection, IncomingRequest, OutgoingResponse, Payload, ReplyTo, RequestParseFailure,
    ServerCodec,
};
use crate::transport::dispatcher;
use crate::transport::read_buffer::read_some;
use crate::transport::sockets::{Counted, SocketStats};
use crate::transport::stream::ServerIo;
use crate::transport::stream_rpc::table::{front, Front, Routed, StreamTable};
use crate::transport::stream_rpc::StreamCore;
use crate::transport::tcp_write::TcpWriteHalf;
use crate::transport::write_queue::DirectWrite;
use crate::transport::writer::{self, FrameSender, OutFrame, MAX_UNWRITTEN_BYTES};
use crate::{errno, Status};

/// A framed protocol's codec, served by the shared loop.
pub(crate) struct FramedProtocol(pub(crate) Arc<dyn ServerCodec>);

impl ServerProtocol for FramedProtocol {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        self.0.detect(prefix)
    }

    fn serve(
        &self,
        io: Counted<ServerIo>,
        prefix: BytesMut,
        peer: Peer,
        shared: Arc<Shared>,
        open: ConnectionGuard,
    ) -> ServeFuture {
        let codec = Arc::clone(&self.0);
        let (io, stats) = io.into_parts();
        let ends = Ends {
            codec,
            peer,
            shared,
            open,
            stats: Arc::clone(&stats),
        };
        match io {
            // Plain TCP splits into owned halves without a lock; TLS needs `tokio::io::split`.
            ServerIo::Plain(stream) => {
                let (reader, writer) = stream.into_split();
                let reader = Counted::new(reader, Arc::clone(&stats));
                let writer = Counted::new(TcpWriteHalf::new(writer), stats);
                on_a_dispatcher(serve(ends, reader, writer.clone(), Some(writer), prefix))
            }
            #[cfg(feature = "tls")]
            tls => {
                let (reader, writer) = tokio::io::split(Counted::new(tls, stats));
                on_a_dispatcher(serve(ends, reader, writer, None, prefix))
            }
        }
    }
}

/// Hands a connection's read loop to a dispatcher of the runtime (`transport::dispatcher`);
/// the accepting task ends. With thousands of connections on a busy server, a task per
/// connection overflowed a tokio worker's queue into the runtime's shared one, where some
/// waited while others were served again and again; a dispatcher polls connections in the
/// order their sockets became ready.
fn on_a_dispatcher(serving: impl Future<Output = ()> + Send + 'static) -> ServeFuture {
    Box::pin(async move {
        let _ = dispatcher::spawn(serving);
    })
}

/// What serves a connection, besides its two halves.
struct Ends {
    codec: Arc<dyn ServerCodec>,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
    /// The connection's counters: messages are counted here, bytes by its halves.
    stats: Arc<SocketStats>,
}

/// Serves a framed protocol on a connection whose first bytes are in `buf`, until the peer
/// leaves, the input is bad, or the server closes. With `direct` (plain TCP), the replies a
/// read batch makes are written by the reading task itself when the writer is idle.
async fn serve<R, W>(
    ends: Ends,
    mut reader: R,
    write_half: W,
    direct: Option<Counted<TcpWriteHalf>>,
    mut buf: BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let Ends {
        codec,
        peer,
        shared,
        open,
        stats,
    } = ends;
    let remote = peer.remote;
    let (sender, mut queue) = writer::queue();
    stats.watch_unwritten(sender.unwritten_counter());
    queue.count_into(Arc::clone(&stats));
    let mut closed = shared.phase.subscribe();
    let writer = tokio::spawn(async move {
        let _open = open;
        let give_up = async {
            wait_for_phase(&mut closed, |p| p == Phase::Closed).await;
            tokio::time::sleep(CLOSE_GRACE).await;
        };
        tokio::select! {
            written = writer::write_loop(write_half, queue) => {
                if let Err(e) = written {
                    tracing::debug!(%remote, "write failed: {e}");
                }
            }
            () = give_up => tracing::warn!(%remote, "closing connection: replies not read within {CLOSE_GRACE:?} of server close"),
        }
    });
    let streams = codec
        .carries_streams()
        .then(|| StreamTable::new(sender.clone(), remote));
    let pending = shared.options.idle_timeout.map(|_| Arc::new(()));
    let connection = Connection {
        replies: Replies::new(sender, codec.replies_in_order()),
        codec,
        peer,
        shared,
        identity: None,
        streams: streams.clone(),
        pending,
        stats,
        direct,
    };
    let closing = connection.read_requests(&mut reader, &mut buf).await;
    if let Some(streams) = streams {
        streams.fail_all(&Status::new(
            errno::EEOF,
            format!("the connection from {remote} carrying the stream closed"),
        ));
    }
    match closing {
        Some(Closing::BadInput(reason) | Closing::Slow(reason)) => {
            tracing::warn!(%remote, "closing connection: {reason}");
            writer.abort();
        }
        // The writer sends the ERPCAUTH reply, then closes the connection.
        Some(Closing::AuthFailed(status)) => {
            tracing::warn!(%remote, "closing connection: {}", status.message());
        }
        Some(Closing::LostReply) => {
            tracing::warn!(%remote, "closing connection: a reply could not be made, and the replies after it must not take its place");
        }
        None => {}
    }
}

/// Why the server closes a connection.
enum Closing {
    /// Bytes it cannot parse: nothing more on the connection can be trusted.
    BadInput(String),
    /// Its first request did not arrive in time.
    Slow(String),
    /// The first request's credential failed verification (its reply is still sent).
    AuthFailed(Status),
    /// A reply could not be made on a protocol whose replies keep the requests' order (the
    /// replies before it are still sent).
    LostReply,
}

/// One connection's state while it reads requests.
struct Connection {
    codec: Arc<dyn ServerCodec>,
    replies: Replies,
    peer: Peer,
    shared: Arc<Shared>,
    /// Who the connection's first request proved to be; `None` until verified (or without an
    /// authenticator).
    identity: Option<Option<Arc<AuthContext>>>,
    /// The brpc streams on the connection, for protocols that carry them.
    streams: Option<Arc<StreamTable>>,
    /// With an idle timeout, held by each request until it is answered: the connection is
    /// not idle while one is in flight.
    pending: Option<Arc<()>>,
    /// Counts the messages read.
    stats: Arc<SocketStats>,
    /// The socket, for writing a read batch's replies at once (plain TCP only).
    direct: Option<Counted<TcpWriteHalf>>,
}

impl Connection {
    /// Whether the connection may be closed as idle: no request in flight, no stream open.
    fn is_idle(&self) -> bool {
        self.pending
            .as_ref()
            .is_none_or(|p| Arc::strong_count(p) == 1)
            && self.streams.as_ref().is_none_or(|s| s.is_empty())
    }

    /// Reads and starts requests until the connection ends; why it must close, if it must.
    async fn read_requests<R: AsyncRead + Unpin>(
        mut self,
        reader: &mut R,
        buf: &mut BytesMut,
    ) -> Option<Closing> {
        let mut phase = self.shared.phase.subscribe();
        let max_body_size = self.shared.options.max_body_size;
        if self.shared.options.authenticator.is_none() {
            self.identity = Some(None);
        }
        // Reset on every read; only with an idle timeout.
        let idle_limit = self.shared.options.idle_timeout;
        let mut idle = idle_limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
        // Until the first request has arrived whole (`first_bytes_timeout`): a connection
        // that trickles its first frame is not a client yet. Later frames may take their
        // time, as in brpc.
        let mut first_message = self
            .peer
            .first_message_by
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        // The detected prefix is in `buf` already: cut what it holds before reading more.
        let mut first = true;
        loop {
            // When this read's requests arrived, read from the clock once for all of them (and
            // only if one has a deadline).
            let mut arrived = None;
            if !std::mem::take(&mut first) {
                tokio::select! {
                    read = read_some(reader, buf) => match read {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(remote = %self.peer.remote, "read failed: {e}");
                            return None;
                        }
                    },
                    () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => return None,
                    () = async { first_message.as_mut().expect("armed").await }, if first_message.is_some() => {
                        let limit = self.shared.options.first_bytes_timeout.unwrap_or_default();
                        return Some(Closing::Slow(format!(
                            "no whole first request within {}ms ({} bytes came)",
                            limit.as_millis(),
                            buf.len()
                        )));
                    }
                    () = async { idle.as_mut().expect("armed").await }, if idle.is_some() => {
                        if self.is_idle() {
                            tracing::debug!(remote = %self.peer.remote, "closing idle connection");
                            return None;
                        }
                        // Busy: look again a whole period later.
                        if let (Some(idle), Some(limit)) = (idle.as_mut(), idle_limit) {
                            idle.as_mut().reset(tokio::time::Instant::now() + limit);
                        }
                        continue;
                    }
                }
                if let (Some(idle), Some(limit)) = (idle.as_mut(), idle_limit) {
                    idle.as_mut().reset(tokio::time::Instant::now() + limit);
                }
            }
            // The replies of requests answered inline leave together when the batch is read.
            self.replies.sender.hold();
            let closing = 'frames: loop {
                if let Some(streams) = &self.streams {
                    match front(buf) {
                        Front::NeedMore => break 'frames None,
                        Front::Other => {}
                        Front::Stream => match streams.read_frame(buf, max_body_size) {
                            Ok(Routed::NeedMore) => break 'frames None,
                            Ok(Routed::Done) => {
                                self.stats.received(1);
                                continue;
                            }
                            Ok(Routed::Reply(..)) => {
                                // Only a client's stream awaits a reply.
                                self.stats.received(1);
                                continue;
                            }
                            Err(e) => break 'frames Some(Closing::BadInput(e.to_string())),
                        },
                    }
                }
                match self.codec.decode_request(buf, max_body_size) {
                    Ok(Some(request)) => {
                        self.stats.received(1);
                        first_message = None;
                        if let Some(closing) = self.authenticate(&request) {
                            break 'frames Some(closing);
                        }
                        if let Some(task) = self.dispatch(request, &mut arrived) {
                            run_inline_or_spawn(task).await;
                        }
                        if self.replies.is_broken() {
                            break 'frames Some(Closing::LostReply);
                        }
                    }
                    Ok(None) => break 'frames None,
                    Err(e) => break 'frames Some(Closing::BadInput(e.to_string())),
                }
            };
            let direct = self.direct.as_ref().map(|io| io as &dyn DirectWrite);
            self.replies.sender.end_batch(direct);
            if closing.is_some() {
                return closing;
            }
        }
    }

    /// Verifies the credential of the connection's first request with the server's
    /// authenticator (as brpc: once for the whole connection). On failure the request is
    /// answered with ERPCAUTH and the connection closes.
    fn authenticate(&mut self, request: &IncomingRequest) -> Option<Closing> {
        if self.identity.is_some() {
            return None;
        }
        let authenticator = self.shared.options.authenticator.as_deref()?;
        // brpc's words, without its usual `[address][E1004]` prefix.
        let fail = |why: &str| Status::new(errno::ERPCAUTH, format!("Fail to authenticate: {why}"));
        let verified = match request.credential.as_deref() {
            None => Err(fail("no credential")),
            Some(credential) => match std::str::from_utf8(credential) {
                Err(_) => Err(fail("credential is not UTF-8")),
                Ok(credential) => authenticator
                    .verify_credential(credential, self.peer.remote)
                    .map_err(|e| fail(e.message())),
            },
        };
        match verified {
            Ok(who) => {
                self.identity = Some(Some(Arc::new(who)));
                None
            }
            Err(status) => {
                let slot = self.replies.slot();
                let frame = encode_reply_with(
                    &*self.codec,
                    &request.reply_to,
                    Err(&status),
                    self.peer.local,
                    None,
                    true,
                );
                self.replies.send(slot, frame);
                Some(Closing::AuthFailed(status))
            }
        }
    }

    /// Answers `status` at once.
    fn reply_error(&self, reply_to: &ReplyTo, slot: ReplySlot, status: &Status) {
        let frame = encode_reply(&*self.codec, reply_to, Err(status), self.peer.local, None);
        self.replies.send(slot, frame);
    }

    /// Starts one request: the task that serves it, or `None` when it was answered at once
    /// (with an error).
    fn dispatch(
        &self,
        request: IncomingRequest,
        arrived: &mut Option<Instant>,
    ) -> Option<RequestTask> {
        let shared = &self.shared;
        if let Some(dump) = &shared.rpc_dump {
            dump.sample(self.codec.name(), &request);
        }
        let slot = self.replies.slot();
        let inflight = InflightGuard::enter(shared);
        if shared.phase_now() != Phase::Running {
            let stopping = Status::new(errno::ELOGOFF, "Server is stopping");
            self.reply_error(&request.reply_to, slot, &stopping);
            return None;
        }
        if let Some(limited) = shared.over_concurrency() {
            self.reply_error(&request.reply_to, slot, &limited);
            return None;
        }
        if self.replies.unwritten() > MAX_UNWRITTEN_BYTES {
            let overcrowded = Status::new(
                errno::EOVERCROWDED,
                format!("Connection to {} is overcrowded", self.peer.remote),
            );
            self.reply_error(&request.reply_to, slot, &overcrowded);
            return None;
        }
        let (service, method) =
            match find_method(&shared.registry, &request.service, &request.method) {
                Ok(found) => found,
                Err(status) => {
                    let status = self
                        .codec
                        .method_not_found(&request.service, &request.method)
                        .unwrap_or(status);
                    self.reply_error(&request.reply_to, slot, &status);
                    return None;
                }
            };
        if let Some(status) = &request.rejected {
            self.reply_error(&request.reply_to, slot, status);
            return None;
        }
        let timeout = client_timeout(request.timeout_ms);
        let request_size = request.payload.message.len() + request.payload.attachment.len();
        let arrival = Arrival {
            upstream: request.trace,
            protocol: self.codec.name(),
            remote: self.peer.remote,
            log_id: request.log_id,
            request_size,
        };
        let admitted = match shared
            .registry
            .enter_method(&**service, method, timeout, arrival)
        {
            Ok(admitted) => admitted,
            Err(limited) => {
                self.reply_error(&request.reply_to, slot, &limited);
                return None;
            }
        };
        let IncomingRequest {
            reply_to,
            payload,
            log_id,
            timeout_ms,
            metadata,
            stream,
            ..
        } = request;
        let stream_offer = match (stream, &self.streams) {
            (Some(remote), Some(table)) => Some(StreamOffer {
                remote,
                table: Arc::clone(table),
                accepted: Arc::default(),
            }),
            _ => None,
        };
        let accepted = stream_offer
            .as_ref()
            .map(|offer| Arc::clone(&offer.accepted));
        let Peer {
            remote, local, tls, ..
        } = self.peer;
        let deadline =
            timeout_ms.and_then(|ms| deadline_after(*arrived.get_or_insert_with(Instant::now), ms));
        let compress_type = payload.compress_type;
        let context = ServerContext {
            remote_side: remote,
            local_side: local,
            log_id,
            timeout_ms,
            deadline,
            request_attachment: payload.attachment,
            request_compress_type: payload.compress_type,
            response_attachment: Bytes::new(),
            response_compress_type: CompressType::None,
            user_fields: metadata,
            request_headers: http::HeaderMap::new(),
            response_headers: Vec::new(),
            response_trailers: Vec::new(),
            auth_context: self.identity.clone().flatten(),
            tls,
            stream_offer,
        };
        let max_body_size = shared.options.max_body_size;
        // The handler's future is made here, so the task below holds only what is left.
        let handler = match compress::decompress(compress_type, payload.message, max_body_size) {
            Err(e) => Err(Status::new(
                errno::EREQUEST,
                format!("Fail to decompress request: {e}"),
            )),
            Ok(message) => Ok(start_handler(
                service,
                method,
                context,
                message,
                admitted.blocking,
                &shared.interceptors,
                admitted.span,
            )),
        };
        let codec = Arc::clone(&self.codec);
        let replies = self.replies.clone();
        let pending = self.pending.clone();
        Some(Box::pin(async move {
            let _pending = pending;
            let mut method_guard = admitted.guard;
            let result = match handler {
                Err(status) => Err(status),
                Ok(handler) => handler
                    .run(inflight.shared())
                    .await
                    .and_then(response_payload),
            };
            record_answer(&mut method_guard, &result);
            // A request message that did not parse is worded as the protocol's brpc server
            // words it.
            let result = result.map_err(|status| match status.unparsed_request() {
                Some(unparsed) => codec.request_parse_failure(&RequestParseFailure {
                    message: unparsed.message,
                    content_type: unparsed.content_type,
                    compress_type,
                    size: request_size,
                }),
                None => status,
            });
            // The stream the handler accepted is announced in the reply, and its messages
            // flow once the reply is queued ahead of them.
            let accepted: Option<Arc<StreamCore>> =
                accepted.as_deref().and_then(|slot| slot.get().cloned());
            let stream = accepted.as_deref().map(StreamCore::setup);
            let frame = match result {
                Ok(payload) => {
                    if let Some(guard) = &method_guard {
                        guard.response_size(payload.message.len() + payload.attachment.len());
                    }
                    encode_reply(&*codec, &reply_to, Ok(payload), local, stream)
                }
                Err(status) => encode_reply(&*codec, &reply_to, Err(&status), local, stream),
            };
            // The limiter hears of the answer before the client can.
            drop(method_guard);
            let replied = frame.is_some();
            replies.send(slot, frame);
            if let Some(accepted) = accepted {
                if replied {
                    accepted.connect();
                } else {
                    accepted.fail(Status::internal(
                        "the reply that sets the stream up could not be made",
                    ));
                }
            }
        }))
    }
}

/// A handler's response as a payload to send: its message compressed as the handler asked,
/// with its attachment; or its failure (codes `<= 0` become EINTERNAL, as brpc's).
fn response_payload(response: ServiceResponse) -> Result<Payload, Status> {
    let message = match response.result {
        Ok(message) => message,
        Err(status) if status.code() <= 0 => {
            return Err(Status::new(errno::EINTERNAL, status.message()))
        }
        Err(status) => return Err(status),
    };
    let compress_type = response.context.response_compress_type;
    let message = if compress_type == CompressType::None {
        message
    } else {
        compress::compress_to_bytes(compress_type, &message)
            .map_err(|e| Status::internal(format!("Fail to compress response: {e}")))?
    };
    Ok(Payload {
        message,
        attachment: response.context.response_attachment,
        compress_type,
    })
}

/// The frame of a reply; a response the codec cannot encode is answered with its error.
/// `None` when the codec can encode neither (or panics).
fn encode_reply(
    codec: &dyn ServerCodec,
    reply_to: &ReplyTo,
    result: Result<Payload, &Status>,
    local: SocketAddr,
    stream: Option<StreamSetup>,
) -> Option<OutFrame> {
    encode_reply_with(codec, reply_to, result, local, stream, false)
}

/// [`encode_reply`], an error's text sent without brpc's prefix when `verbatim_error`.
fn encode_reply_with(
    codec: &dyn ServerCodec,
    reply_to: &ReplyTo,
    result: Result<Payload, &Status>,
    local: SocketAddr,
    stream: Option<StreamSetup>,
    verbatim_error: bool,
) -> Option<OutFrame> {
    let encode = |result| {
        let response = OutgoingResponse::new(reply_to, result, local).with_stream(stream);
        let response = if verbatim_error {
            response.with_verbatim_error()
        } else {
            response
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| codec.encode_response(response)))
            .unwrap_or_else(|panic| {
                Err(Status::internal(format!(
                    "the codec panicked: {}",
                    panic_message(&panic)
                )))
            })
    };
    let failure = match encode(result) {
        Ok(frame) => return Some(frame),
        Err(status) => status,
    };
    match encode(Err(&failure)) {
        Ok(frame) => Some(frame),
        Err(again) => {
            // nshead, say, cannot carry errors at all: its connection closes instead.
            tracing::warn!(protocol = codec.name(), "no reply can be made: {failure}");
            tracing::debug!(protocol = codec.name(), "nor for its error: {again}");
            None
        }
    }
}

/// Where a connection's replies go: straight to the writer, or (for protocols whose replies
/// keep the requests' order) through a reorder buffer.
#[derive(Clone)]
struct Replies {
    sender: FrameSender,
    order: Option<Arc<Mutex<Reorder>>>,
}

/// Replies that arrived before those of earlier requests.
#[derive(Default)]
struct Reorder {
    /// Slots handed out so far.
    issued: u64,
    /// The slot of the oldest reply not yet written.
    next: u64,
    /// Replies from `next` on; `None` where a reply has not come yet.
    waiting: VecDeque<Option<OutFrame>>,
    /// Bytes of the replies waiting.
    held: usize,
    /// A reply went missing: later replies would answer the wrong requests, so none is sent
    /// and the connection closes.
    broken: bool,
}

/// A request's place among the replies: nothing for protocols that answer in any order.
enum ReplySlot {
    Any,
    Ordered(OrderedSlot),
}

/// A place in a reorder buffer. If its request is dropped without a reply (its task was
/// cancelled), the connection is closed: without correlation ids, the peer could not tell
/// which replies are whose.
struct OrderedSlot {
    seq: u64,
    order: Arc<Mutex<Reorder>>,
    sender: FrameSender,
    filled: bool,
}

impl Replies {
    fn new(sender: FrameSender, in_order: bool) -> Self {
        Replies {
            sender,
            order: in_order.then(Default::default),
        }
    }

    /// The next request's place, in arrival order.
    fn slot(&self) -> ReplySlot {
        match &self.order {
            None => ReplySlot::Any,
            Some(order) => {
                let mut reorder = order.lock().unwrap_or_else(|e| e.into_inner());
                let seq = reorder.issued;
                reorder.issued += 1;
                reorder.waiting.push_back(None);
                ReplySlot::Ordered(OrderedSlot {
                    seq,
                    order: Arc::clone(order),
                    sender: self.sender.clone(),
                    filled: false,
                })
            }
        }
    }

    /// Sends `frame` now, or when the replies before it have gone. A reply that could not be
    /// made (`None`) is lost on protocols with correlation ids (its call times out) and closes
    /// the connection on the others.
    fn send(&self, slot: ReplySlot, frame: Option<OutFrame>) {
        match slot {
            ReplySlot::Any => {
                if let Some(frame) = frame {
                    let _ = self.sender.send(frame);
                }
            }
            ReplySlot::Ordered(mut slot) => slot.fill(frame),
        }
    }

    /// Reply bytes not yet written, held back ones included.
    fn unwritten(&self) -> usize {
        let held = self.order.as_ref().map_or(0, |order| {
            order.lock().unwrap_or_else(|e| e.into_inner()).held
        });
        self.sender.unwritten() + held
    }

    /// Whether the connection must close: a reply went missing.
    fn is_broken(&self) -> bool {
        self.order
            .as_ref()
            .is_some_and(|order| order.lock().unwrap_or_else(|e| e.into_inner()).broken)
    }
}

impl OrderedSlot {
    fn fill(&mut self, frame: Option<OutFrame>) {
        self.filled = true;
        let mut reorder = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if reorder.broken {
            return;
        }
        let Some(frame) = frame else {
            reorder.broken = true;
            reorder.waiting.clear();
            reorder.held = 0;
            self.sender.close();
            return;
        };
        let index = (self.seq - reorder.next) as usize;
        reorder.held += frame.len();
        reorder.waiting[index] = Some(frame);
        while let Some(Some(_)) = reorder.waiting.front() {
            let frame = reorder.waiting.pop_front().flatten().unwrap_or_default();
            reorder.next += 1;
            reorder.held -= frame.len();
            let _ = self.sender.send(frame);
        }
    }
}

impl Drop for OrderedSlot {
    fn drop(&mut self) {
        if !self.filled {
            tracing::warn!("a request ended without its reply: closing the connection, whose replies must keep their order");
            self.fill(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(tag: &'static [u8]) -> Option<OutFrame> {
        Some(OutFrame::whole(Bytes::from_static(tag)))
    }

    /// What the writer got: frames' heads, `None` for a close.
    fn sent(queue: &mut writer::FrameReceiver) -> Vec<Option<Bytes>> {
        std::iter::from_fn(|| queue.try_recv())
            .map(|item| item.map(|frame| frame.head))
            .collect()
    }

    fn some(tag: &'static [u8]) -> Option<Bytes> {
        Some(Bytes::from_static(tag))
    }

    #[tokio::test]
    async fn ordered_replies_leave_in_request_order() {
        let (sender, mut queue) = writer::queue();
        let replies = Replies::new(sender, true);
        let (a, b, c) = (replies.slot(), replies.slot(), replies.slot());
        replies.send(c, frame(b"c"));
        replies.send(b, frame(b"bb"));
        assert!(sent(&mut queue).is_empty(), "held until the first reply");
        assert_eq!(replies.unwritten(), 3, "held replies count as unwritten");
        replies.send(a, frame(b"a"));
        assert_eq!(sent(&mut queue), [some(b"a"), some(b"bb"), some(b"c")]);
        assert!(!replies.is_broken());
    }

    #[tokio::test]
    async fn a_missing_ordered_reply_closes_the_connection() {
        let (sender, mut queue) = writer::queue();
        let replies = Replies::new(sender, true);
        let (a, b, c) = (replies.slot(), replies.slot(), replies.slot());
        replies.send(b, frame(b"b"));
        drop(a); // its request was dropped unanswered
        assert_eq!(
            sent(&mut queue),
            [None],
            "nothing after the gap, then a close"
        );
        assert!(replies.is_broken());
        replies.send(c, frame(b"c"));
        assert!(sent(&mut queue).is_empty());
        // A reply the codec could not make is a gap too.
        let (sender, mut queue) = writer::queue();
        let replies = Replies::new(sender, true);
        let first = replies.slot();
        replies.send(first, None);
        assert_eq!(sent(&mut queue), [None]);
    }

    #[tokio::test]
    async fn unordered_replies_leave_at_once() {
        let (sender, mut queue) = writer::queue();
        let replies = Replies::new(sender, false);
        let (first, second, third) = (replies.slot(), replies.slot(), replies.slot());
        replies.send(second, frame(b"2"));
        replies.send(first, frame(b"1"));
        replies.send(third, None); // lost: its call times out
        assert_eq!(sent(&mut queue), [some(b"2"), some(b"1")]);
        assert!(!replies.is_broken());
    }
}
