//! [`Span`]: what rpcz records of one side of one call.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::{ids, sampling};
use crate::protocol::{Protocol, TraceIds};
use crate::MethodDescriptor;

/// The most moments a span keeps.
pub const MAX_EVENTS: usize = 64;

/// Which side of a call a span records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A server answering a call.
    Server,
    /// A client making one.
    Client,
}

/// A moment in a span: a step Brisk marks (`received`, `handler start`, `handler end`,
/// `replied`) or an annotation the handler added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Time since the span began.
    pub at: Duration,
    /// What happened.
    pub what: Cow<'static, str>,
}

/// One side of one traced call (brpc's rpcz span): its ids, method, peer, sizes, outcome and
/// timeline. Read from [`recent`](super::recent) and on the `/rpcz` page.
#[derive(Debug)]
pub struct Span {
    kind: SpanKind,
    ids: TraceIds,
    log_id: i64,
    service: Cow<'static, str>,
    method: Cow<'static, str>,
    protocol: Cow<'static, str>,
    began_at: SystemTime,
    began: Instant,
    record: Mutex<Record>,
}

/// What is learned of a span as its call goes on.
#[derive(Debug, Default)]
struct Record {
    remote: Option<SocketAddr>,
    request_size: usize,
    response_size: usize,
    error_code: i32,
    latency: Option<Duration>,
    events: Vec<Event>,
}

/// Where a server's traced call came from, for [`Span::server`].
pub(crate) struct ServerCall {
    /// The ids the caller sent, if it traces the call.
    pub(crate) upstream: Option<TraceIds>,
    pub(crate) service: &'static str,
    pub(crate) method: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) remote: SocketAddr,
    pub(crate) log_id: i64,
    pub(crate) request_size: usize,
}

/// The ids of a trace that starts here: new trace and span ids, no parent.
fn new_trace() -> TraceIds {
    TraceIds {
        trace_id: u128::from(ids::next_id()),
        span_id: ids::next_id(),
        parent_span_id: 0,
    }
}

impl Span {
    fn new(
        kind: SpanKind,
        ids: TraceIds,
        service: Cow<'static, str>,
        method: Cow<'static, str>,
        protocol: Cow<'static, str>,
        log_id: i64,
    ) -> Self {
        Span {
            kind,
            ids,
            log_id,
            service,
            method,
            protocol,
            began_at: SystemTime::now(),
            began: Instant::now(),
            record: Mutex::new(Record::default()),
        }
    }

    /// The span of a server's call, if it is traced: its caller traces it (the span continues
    /// the caller's trace, with the caller's span id as brpc's servers take it), or rpcz is on
    /// and the call may start a trace.
    pub(crate) fn server(call: ServerCall) -> Option<Arc<Span>> {
        let ids = match call.upstream {
            Some(upstream) => TraceIds {
                span_id: match upstream.span_id {
                    0 => ids::next_id(),
                    id => id,
                },
                ..upstream
            },
            None if sampling::start_new_trace() => new_trace(),
            None => return None,
        };
        let span = Span::new(
            SpanKind::Server,
            ids,
            Cow::Borrowed(call.service),
            Cow::Borrowed(call.method),
            Cow::Borrowed(call.protocol),
            call.log_id,
        );
        {
            let mut record = span.record();
            record.remote = Some(call.remote);
            record.request_size = call.request_size;
            record.events.push(Event {
                at: Duration::ZERO,
                what: Cow::Borrowed("received"),
            });
        }
        Some(Arc::new(span))
    }

    /// The span of a client's call, if it is traced: made from a traced handler (a child of
    /// its span, `parent`), or rpcz is on and the call may start a trace.
    pub(crate) fn client(
        parent: Option<&Span>,
        method: &MethodDescriptor,
        protocol: &Protocol,
        log_id: i64,
    ) -> Option<Arc<Span>> {
        let ids = match parent {
            Some(parent) => TraceIds {
                trace_id: parent.ids.trace_id,
                span_id: ids::next_id(),
                parent_span_id: parent.ids.span_id,
            },
            None if sampling::start_new_trace() => new_trace(),
            None => return None,
        };
        // Names are copied only for a traced call (a `'static` one is not copied at all).
        Some(Arc::new(Span::new(
            SpanKind::Client,
            ids,
            method.service_cow(),
            method.method_cow(),
            protocol.name_cow(),
            log_id,
        )))
    }

    /// A span of `kind` with `ids` that began `began` after the epoch (for tests of what shows
    /// spans).
    #[cfg(test)]
    pub(crate) fn for_tests(kind: SpanKind, ids: TraceIds, began: Duration) -> Arc<Span> {
        let mut span = Span::new(
            kind,
            ids,
            Cow::Borrowed("example.EchoService"),
            Cow::Borrowed("Echo"),
            Cow::Borrowed("baidu_std"),
            0,
        );
        span.began_at = std::time::UNIX_EPOCH + began;
        Arc::new(span)
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a moment of the call, now. A span keeps at most [`MAX_EVENTS`] moments (the
    /// last, its end, always): a handler that annotates in a loop cannot grow it without end.
    pub fn annotate(&self, what: impl Into<Cow<'static, str>>) {
        let at = self.began.elapsed();
        let mut record = self.record();
        if record.events.len() < MAX_EVENTS - 1 {
            record.events.push(Event {
                at,
                what: what.into(),
            });
        }
    }

    pub(crate) fn set_remote(&self, remote: SocketAddr) {
        self.record().remote = Some(remote);
    }

    pub(crate) fn set_request_size(&self, size: usize) {
        self.record().request_size = size;
    }

    pub(crate) fn set_response_size(&self, size: usize) {
        self.record().response_size = size;
    }

    /// Ends the span with the call's outcome (0, or its error code), marking `last`.
    pub(crate) fn end(&self, error_code: i32, last: &'static str) {
        let latency = self.began.elapsed();
        let mut record = self.record();
        record.error_code = error_code;
        record.latency = Some(latency);
        record.events.push(Event {
            at: latency,
            what: Cow::Borrowed(last),
        });
    }

    /// Which side of the call this is.
    pub fn kind(&self) -> SpanKind {
        self.kind
    }

    /// The trace, span and parent span ids.
    pub fn ids(&self) -> TraceIds {
        self.ids
    }

    /// The call's log id (0 when none).
    pub fn log_id(&self) -> i64 {
        self.log_id
    }

    /// The service's full name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method's name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The protocol the call went over (`baidu_std`, `h2:grpc`, `http`, ...).
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// When the span began, by the wall clock.
    pub fn began_at(&self) -> SystemTime {
        self.began_at
    }

    /// The other side: the client of a server span, the server of a client span (once it
    /// answered).
    pub fn remote(&self) -> Option<SocketAddr> {
        self.record().remote
    }

    /// Bytes of the request's message and attachment.
    pub fn request_size(&self) -> usize {
        self.record().request_size
    }

    /// Bytes of the response's message and attachment.
    pub fn response_size(&self) -> usize {
        self.record().response_size
    }

    /// 0 for a call answered, else its brpc error code.
    pub fn error_code(&self) -> i32 {
        self.record().error_code
    }

    /// How long the call took, once it ended.
    pub fn latency(&self) -> Option<Duration> {
        self.record().latency
    }

    /// The call's moments, in order.
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.record().events.clone();
        events.sort_by_key(|event| event.at);
        events
    }
}
