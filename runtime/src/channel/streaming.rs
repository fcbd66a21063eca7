//! Streaming calls (gRPC's server-, client- and bidirectional streaming methods), on the same
//! path as unary ones: the balancer picks the server, the one retry loop retries on another
//! connection or server while nothing has been sent, and every attempt reports its outcome —
//! for a stream that opened, its end — to the balancer, the health check and the circuit
//! breaker.
//!
//! Requests flow out as the caller's stream yields them, responses flow back as they arrive,
//! and the call's deadline and cancellation bound the whole exchange.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::time::Sleep;

use super::call::{Picked, Report, ServerAttempt, Servers};
use super::figures::CallRecord;
use super::retry::{self, RetrySettings};
use super::Channel;
use crate::codec::MessageCodec;
use crate::controller::{CallState, FinishOnDrop};
use crate::protocol::TraceIds;
use crate::rpcz;
use crate::streaming::BytesStream;
use crate::transport::client::{Failure, OpenStream, StreamRequest};
use crate::{errno, Controller, MethodDescriptor, Status, Streaming};

impl Channel {
    /// Calls a streaming method: sends `requests` as they come and returns the responses as
    /// they arrive. Generated stubs call it for all three streaming kinds (a server-streaming
    /// call sends one request; a client-streaming call reads one response). Only `h2:grpc`
    /// channels stream; others answer EREQUEST.
    ///
    /// It returns once the server has answered with its response headers (in
    /// `cntl.response_headers()`); the call's status arrives at the end of the returned
    /// stream. The channel's timeout bounds the opening only (until the response headers),
    /// not the stream's life: a stream gets a deadline only from
    /// [`Controller::set_timeout`], which bounds the whole call (it ends with ERPCTIMEDOUT
    /// when it passes, and the server learns it as `grpc-timeout`);
    /// [`Controller::clear_timeout`] lifts the opening's bound too. A [`CallId`](crate::CallId) taken before
    /// the call cancels it (ECANCELED). A call that could not be sent (its connection failed
    /// before the stream opened) is retried on another connection or server, as unary calls
    /// are; once it is open, it is not.
    pub async fn streaming<C, Req, Resp, S>(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        requests: S,
    ) -> Result<Streaming<Resp>, Status>
    where
        C: MessageCodec<Req> + MessageCodec<Resp>,
        S: Stream<Item = Req> + Send + 'static,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let started = Instant::now();
        let call_state = cntl.begin_call();
        let interceptors = &self.inner.options.interceptors;
        let (accepted, refused) = match interceptors.is_empty() {
            true => (0, Ok(())),
            false => interceptors.before(cntl, method),
        };
        // Traced when made from a traced handler, or when rpcz starts a trace here.
        let rpcz_guard = rpcz::SpanGuard::new(rpcz::client_span(
            method,
            &self.inner.options.protocol,
            cntl.log_id.unwrap_or_default(),
        ));
        let request_bytes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&request_bytes);
        let requests: BytesStream = Box::pin(requests.map(move |request| {
            let encoded = <C as MessageCodec<Req>>::encode_to_bytes(&request).map_err(|e| {
                Status::new(errno::EREQUEST, format!("Fail to serialize request: {e}"))
            });
            if let Ok(bytes) = &encoded {
                counted.fetch_add(bytes.len(), Ordering::Relaxed);
            }
            encoded
        }));
        let trace = rpcz_guard.span().map(|span| span.ids());
        let result = match refused {
            Ok(()) => {
                self.start_streaming(method, cntl, call_state, started, requests, trace)
                    .await
            }
            Err(refused) => Err(refused),
        };
        cntl.latency = started.elapsed();
        let mut ending = CallEnd {
            channel: self.clone(),
            method: method.clone(),
            started,
            remote: cntl.remote_side,
            request_bytes,
            response_bytes: 0,
            rpcz: Some(rpcz_guard),
        };
        let result = match result {
            Ok(mut messages) => {
                messages.ending = Some(ending);
                Ok(Streaming::responses::<C>(Box::pin(messages)))
            }
            Err(status) => {
                ending.record(status.code().max(1));
                cntl.error = Some(status.clone());
                Err(status)
            }
        };
        if accepted > 0 {
            interceptors.after(accepted, cntl, method);
        }
        result
    }

    /// Opens the stream (with retries) and waits for the response head.
    async fn start_streaming(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        call_state: Option<Arc<CallState>>,
        started: Instant,
        requests: BytesStream,
        trace: Option<TraceIds>,
    ) -> Result<ResponseMessages, Status> {
        let options = &self.inner.options;
        match &self.inner.protocol {
            Some(protocol) => protocol.check_streaming()?,
            None => {
                return Err(Status::new(
                    errno::EREQUEST,
                    "combo channels cannot make streaming calls; call a sub-channel",
                ))
            }
        }
        // The channel's timeout bounds the opening; only the caller's own bounds the stream.
        let open_timeout = cntl.timeout.or(options.timeout);
        let open_deadline = open_timeout.and_then(|t| started.checked_add(t));
        let stream_timeout = cntl.timeout.own();
        let deadline = stream_timeout.and_then(|t| started.checked_add(t));
        cntl.deadline = deadline;
        let requests = Mutex::new(Some(requests));
        let streams = Servers {
            channel: self,
            deadline: open_deadline,
            attempt: OpenAttempt {
                method,
                headers: cntl.request_headers.clone(),
                attachment: cntl.request_attachment.clone(),
                log_id: cntl.log_id,
                trace,
                compress_type: cntl.request_compress_type,
                deadline,
                requests: &requests,
            },
        };
        let settings = RetrySettings {
            max_retry: cntl.max_retry.unwrap_or(options.max_retry),
            retry_policy: &*options.retry_policy,
            backup: None,
        };
        let mut open_sleep = open_deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        let mut cancelled = call_state.clone().map(cancelled_future);
        let outcome = tokio::select! {
            biased;
            () = maybe(cancelled.as_mut()) => Err(Some(Status::new(errno::ECANCELED, "the call was cancelled"))),
            () = maybe(open_sleep.as_mut()) => Err(None),
            opened = retry::run(&streams, cntl, &settings) => opened.map_err(Some),
        };
        let deadline_sleep = deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        // An opening cut off by its deadline recorded the server it waited for.
        let opened = outcome.map_err(|status| {
            status.unwrap_or_else(|| self.reached_timeout(open_timeout, cntl.remote_side))
        })?;
        cntl.remote_side = Some(opened.remote);
        cntl.local_side = Some(opened.stream.local);
        cntl.response_headers = opened.stream.headers;
        cntl.response_compress_type = opened.stream.compress_type;
        Ok(ResponseMessages {
            messages: opened.stream.messages,
            deadline: deadline_sleep,
            timed_out: self.reached_timeout(stream_timeout, Some(opened.remote)),
            cancelled,
            report: opened.report,
            _finish: FinishOnDrop(call_state),
            done: false,
            ending: None,
        })
    }
}

/// A stream that opened, with the report that goes with it until it ends.
struct Opened {
    stream: OpenStream,
    remote: SocketAddr,
    report: Option<Report>,
}

/// A streaming call's attempt: the stream opened on one server, or not.
struct OpenAttempt<'a> {
    method: &'a MethodDescriptor,
    headers: Vec<(String, String)>,
    attachment: Bytes,
    log_id: Option<i64>,
    trace: Option<TraceIds>,
    compress_type: crate::CompressType,
    deadline: Option<Instant>,
    /// The request messages, until an attempt's stream opens and takes them.
    requests: &'a Mutex<Option<BytesStream>>,
}

impl ServerAttempt for OpenAttempt<'_> {
    type Output = Opened;

    async fn run(
        &self,
        channel: &Channel,
        server: &Picked<'_>,
        mut report: Option<Report>,
    ) -> Result<Opened, Failure> {
        let request = StreamRequest {
            method: self.method,
            headers: &self.headers,
            attachment: &self.attachment,
            deadline: self.deadline,
            log_id: self.log_id,
            trace: self.trace,
            compress_type: self.compress_type,
            requests: self.requests,
        };
        let opened = server
            .endpoint()
            .connections()
            .open_stream(&channel.inner.settings, request)
            .await;
        match opened {
            Ok(stream) => {
                if let Some(report) = &mut report {
                    // A caller dropping a long stream is not a timeout of its server.
                    report.set_deadline(self.deadline);
                }
                Ok(Opened {
                    stream,
                    remote: server.addr(),
                    report,
                })
            }
            Err(failure) => {
                if let Some(report) = &mut report {
                    report.finish::<Opened>(&Err(failure.clone()));
                }
                Err(failure)
            }
        }
    }

    fn may_retry(&self) -> bool {
        // Only while the requests are still here: none of them went out.
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves once the call is cancelled through its `CallId`.
fn cancelled_future(state: Arc<CallState>) -> BoxFuture {
    Box::pin(async move { state.cancelled().await })
}

/// Waits for `future`, or forever when there is none.
async fn maybe<F: Future<Output = ()> + Unpin>(future: Option<&mut F>) {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// The response messages of a streaming call, ending with its status, with ERPCTIMEDOUT at the
/// deadline, or with ECANCELED when the call is cancelled.
struct ResponseMessages {
    messages: BytesStream,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Status,
    cancelled: Option<BoxFuture>,
    report: Option<Report>,
    _finish: FinishOnDrop,
    done: bool,
    /// What the call's end records, once the call is open.
    ending: Option<CallEnd>,
}

/// What a streaming call's end records: the channel's figures for its method (and server),
/// and its rpcz span. Dropped before the call ended (the caller dropped the stream), the call
/// counts as cancelled.
struct CallEnd {
    channel: Channel,
    method: MethodDescriptor,
    started: Instant,
    remote: Option<SocketAddr>,
    request_bytes: Arc<AtomicUsize>,
    response_bytes: usize,
    /// `None` once recorded.
    rpcz: Option<rpcz::SpanGuard>,
}

impl CallEnd {
    /// Records the call's end: 0, or its error code.
    fn record(&mut self, code: i32) {
        let Some(rpcz_guard) = self.rpcz.take() else {
            return;
        };
        let call = CallRecord {
            code,
            latency: self.started.elapsed(),
            request_bytes: self.request_bytes.load(Ordering::Relaxed),
            response_bytes: self.response_bytes,
        };
        let inner = &self.channel.inner;
        if let Some(figures) = &inner.figures {
            figures.record(&self.method, &call);
            if let (Some(servers), Some(server)) = (&inner.server_figures, self.remote) {
                servers.record(server, &self.method, &call, || self.channel.servers());
            }
        }
        if let (Some(traced), Some(remote)) = (rpcz_guard.span(), self.remote) {
            traced.set_remote(remote);
            traced.set_request_size(call.request_bytes);
            traced.set_response_size(call.response_bytes);
        }
        rpcz_guard.finish(code, "answered");
    }
}

impl Drop for CallEnd {
    fn drop(&mut self) {
        self.record(errno::ECANCELED);
    }
}

impl ResponseMessages {
    fn end(&mut self, outcome: Result<(), Status>) -> Poll<Option<Result<Bytes, Status>>> {
        self.done = true;
        // Stops the request stream, if it still runs.
        self.messages = Box::pin(futures_util::stream::empty());
        self.deadline = None;
        self.cancelled = None;
        let code = outcome.as_ref().err().map_or(0, Status::code);
        if let Some(mut report) = self.report.take() {
            report.finish_with(code);
        }
        if let Some(mut ending) = self.ending.take() {
            ending.record(if code == 0 { 0 } else { code.max(1) });
        }
        Poll::Ready(outcome.err().map(Err))
    }
}

impl Stream for ResponseMessages {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(cancelled) = this.cancelled.as_mut() {
            if cancelled.as_mut().poll(cx).is_ready() {
                return this.end(Err(Status::new(errno::ECANCELED, "the call was cancelled")));
            }
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                let status = this.timed_out.clone();
                return this.end(Err(status));
            }
        }
        match this.messages.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(message))) => {
                if let Some(ending) = &mut this.ending {
                    ending.response_bytes += message.len();
                }
                Poll::Ready(Some(Ok(message)))
            }
            Poll::Ready(Some(Err(status))) => this.end(Err(status)),
            Poll::Ready(None) => this.end(Ok(())),
        }
    }
}
