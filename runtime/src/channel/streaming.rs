//! Streaming calls (gRPC's server-, client- and bidirectional streaming methods).
//!
//! A streaming call goes to one server (the channel's, or the one its load balancer picks) and
//! is never retried: requests flow out as the caller's stream yields them, responses flow back
//! as they arrive, and the call's deadline and cancellation bound the whole exchange.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use super::cluster::Cluster;
use super::{Channel, Endpoint, MethodDescriptor, Target};
use crate::codec::MessageCodec;
use crate::controller::{CallState, FinishOnDrop};
use crate::lb::{Backend, CallFeedback, SelectIn};
use crate::protocol::grpc;
use crate::transport::grpc::{
    call_result, check_response_head, header_pairs, message_bytes, request_compression,
    BodyMessages, Reader, RequestChunks, RequestHead,
};
use crate::transport::h2_body::H2Body;
use crate::{errno, Controller, Protocol, Status, Streaming};

impl Channel {
    /// Calls a streaming method: sends `requests` as they come and returns the responses as
    /// they arrive. Generated stubs call it for all three streaming kinds (a server-streaming
    /// call sends one request; a client-streaming call reads one response). Only `h2:grpc`
    /// channels stream; others answer EREQUEST.
    ///
    /// It returns once the server has answered with its response headers (in
    /// `cntl.response_headers()`); the call's status arrives at the end of the returned
    /// stream. The timeout (`cntl`'s, else the channel's) bounds the whole call: when it
    /// passes, the stream ends with ERPCTIMEDOUT. A [`CallId`](crate::CallId) taken before
    /// the call cancels it (ECANCELED). Streaming calls are not retried.
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
        let result = self
            .start_streaming(method, cntl, call_state, started, move |compressed| {
                Box::pin(RequestFrames {
                    requests: Box::pin(requests),
                    encode: <C as MessageCodec<Req>>::encode_to_bytes,
                    compressed,
                    done: false,
                    _request: PhantomData,
                })
            })
            .await;
        cntl.latency = started.elapsed();
        match result {
            Ok(messages) => Ok(Streaming::responses::<C>(Box::pin(messages))),
            Err(status) => {
                cntl.error = Some(status.clone());
                Err(status)
            }
        }
    }

    /// Sends the call's head and request body, and waits for the response head.
    async fn start_streaming(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        call_state: Option<Arc<CallState>>,
        started: Instant,
        body: impl FnOnce(bool) -> RequestChunks,
    ) -> Result<ResponseMessages, Status> {
        let options = &self.inner.options;
        if options.protocol != Protocol::Grpc {
            return Err(Status::new(
                errno::EREQUEST,
                "streaming methods need protocol h2:grpc",
            ));
        }
        if !cntl.request_attachment.is_empty() {
            return Err(Status::new(
                errno::EREQUEST,
                "h2:grpc cannot carry an attachment",
            ));
        }
        let compressed = request_compression(cntl.request_compress_type)?;
        let timeout = cntl.timeout.or(options.timeout);
        let deadline = timeout.and_then(|t| started.checked_add(t));
        cntl.deadline = deadline;
        let route = self.route(cntl.request_code)?;
        let addr = route.endpoint.addr();
        cntl.remote_side = Some(addr);
        let mut report = route.report();
        let head = RequestHead {
            addr,
            method,
            headers: &cntl.request_headers,
            deadline,
            log_id: cntl.log_id,
            compressed,
        }
        .build(options)?;
        let (stop_requests, stop) = oneshot::channel();
        let request = http::Request::from_parts(head, ());
        let chunks = body(compressed);
        let timed_out = || {
            Status::new(
                errno::ERPCTIMEDOUT,
                format!(
                    "Reached timeout={}ms @{addr}",
                    timeout.unwrap_or_default().as_millis()
                ),
            )
        };
        let endpoint = Arc::clone(&route.endpoint);
        let send = async {
            let conn = endpoint.grpc.connection(addr, options).await?;
            let response = conn.send_streaming(request, chunks, stop).await?;
            Ok::<_, Status>((conn, response))
        };
        let mut deadline_sleep = deadline.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        let mut cancelled = call_state.clone().map(cancelled_future);
        let outcome = tokio::select! {
            biased;
            () = maybe(cancelled.as_mut()) => Err(Status::new(errno::ECANCELED, "the call was cancelled")),
            () = maybe(deadline_sleep.as_mut()) => Err(timed_out()),
            outcome = send => outcome,
        };
        let (conn, response) = outcome.inspect_err(|status| report.finish(status.code()))?;
        let (parts, body) = response.into_parts();
        let encoding = check_response_head(&parts).inspect_err(|s| report.finish(s.code()))?;
        cntl.local_side = Some(conn.local);
        cntl.response_headers = header_pairs(&parts.headers);
        cntl.response_compress_type = encoding;
        // A trailers-only response: the status is in the head.
        let head_ok = if parts.headers.contains_key("grpc-status") {
            call_result(&parts.headers).map_err(|failure| {
                report.finish(failure.status.code());
                failure.status
            })?;
            true
        } else {
            false
        };
        Ok(ResponseMessages {
            messages: BodyMessages::new(body, encoding, options.max_body_size, Reader::Client),
            head_ok,
            deadline: deadline_sleep,
            timed_out: timed_out(),
            cancelled,
            stop_requests: Some(stop_requests),
            report,
            _finish: FinishOnDrop(call_state),
            done: false,
        })
    }

    /// The server a streaming call goes to.
    fn route(&self, request_code: Option<u64>) -> Result<Route, Status> {
        match &self.inner.target {
            Target::Single(endpoint) => Ok(Route {
                endpoint: Arc::clone(endpoint),
                cluster: None,
            }),
            Target::Cluster(cluster) => {
                let backend = cluster.balancer().select(&SelectIn {
                    request_code,
                    excluded: &[],
                })?;
                Ok(Route {
                    endpoint: Arc::clone(backend.endpoint()),
                    cluster: Some((Arc::clone(cluster), backend)),
                })
            }
            Target::Combo(_) => Err(Status::new(
                errno::EREQUEST,
                "combo channels cannot make streaming calls; call a sub-channel",
            )),
        }
    }
}

/// Where a streaming call goes: the server, and the cluster to report back to.
struct Route {
    endpoint: Arc<Endpoint>,
    cluster: Option<(Arc<Cluster>, Backend)>,
}

impl Route {
    fn report(&self) -> Report {
        Report {
            cluster: self.cluster.clone(),
            begin: Instant::now(),
            error_code: None,
        }
    }
}

/// Tells a cluster's load balancer how the call went, once it ends (ECANCELED when the caller
/// drops it unfinished).
struct Report {
    cluster: Option<(Arc<Cluster>, Backend)>,
    begin: Instant,
    error_code: Option<i32>,
}

impl Report {
    fn finish(&mut self, code: i32) {
        self.error_code.get_or_insert(code);
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some((cluster, backend)) = &self.cluster {
            cluster.balancer().feedback(&CallFeedback {
                backend,
                begin: self.begin,
                latency: self.begin.elapsed(),
                error_code: self.error_code.unwrap_or(errno::ECANCELED),
            });
        }
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

/// The caller's requests as HTTP/2 body chunks, one message each. A request that cannot be
/// encoded ends it with an error, which resets the HTTP/2 stream (so the server never takes a
/// cut-short stream for a whole one); so does the call's end, through the pump's `stop`.
struct RequestFrames<S, Req> {
    requests: Pin<Box<S>>,
    encode: fn(&Req) -> Result<Bytes, String>,
    compressed: bool,
    done: bool,
    _request: PhantomData<fn(Req)>,
}

impl<S, Req> RequestFrames<S, Req>
where
    S: Stream<Item = Req> + Send + 'static,
    Req: Send + 'static,
{
    fn frame(&self, request: &Req) -> Result<Bytes, Status> {
        let payload = (self.encode)(request)
            .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to serialize request: {e}")))?;
        if self.compressed {
            let packed = grpc::gzip(&payload).map_err(|e| {
                Status::new(errno::EREQUEST, format!("Fail to compress request: {e}"))
            })?;
            message_bytes(true, &packed)
        } else {
            message_bytes(false, &payload)
        }
    }
}

impl<S, Req> Stream for RequestFrames<S, Req>
where
    S: Stream<Item = Req> + Send + 'static,
    Req: Send + 'static,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.requests.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(request)) => match this.frame(&request) {
                Ok(chunk) => Poll::Ready(Some(Ok(chunk))),
                Err(status) => {
                    tracing::warn!(%status, "streaming call reset");
                    this.done = true;
                    Poll::Ready(Some(Err(status)))
                }
            },
        }
    }
}

/// The response messages of a streaming call, ending with the status of its trailers, with
/// ERPCTIMEDOUT at the deadline, or with ECANCELED when the call is cancelled.
struct ResponseMessages {
    messages: BodyMessages<H2Body>,
    /// The response head carried `grpc-status: 0` (a trailers-only success).
    head_ok: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Status,
    cancelled: Option<BoxFuture>,
    /// Dropped when the call ends, which stops the request stream.
    stop_requests: Option<oneshot::Sender<()>>,
    report: Report,
    _finish: FinishOnDrop,
    done: bool,
}

impl ResponseMessages {
    fn end(&mut self, outcome: Result<(), Status>) -> Poll<Option<Result<Bytes, Status>>> {
        self.done = true;
        self.stop_requests = None;
        self.deadline = None;
        self.cancelled = None;
        match outcome {
            Ok(()) => {
                self.report.finish(0);
                Poll::Ready(None)
            }
            Err(status) => {
                self.report.finish(status.code());
                Poll::Ready(Some(Err(status)))
            }
        }
    }

    /// The call's status once the body has ended.
    fn final_status(&mut self) -> Result<(), Status> {
        match self.messages.take_trailers() {
            Some(trailers) => call_result(&trailers).map_err(|failure| failure.status),
            None if self.head_ok => Ok(()),
            None => Err(Status::new(
                errno::ERESPONSE,
                "the response ended without grpc-status",
            )),
        }
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
        match this.messages.poll_message(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(message))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Some(Err(status))) => this.end(Err(status)),
            Poll::Ready(None) => {
                let outcome = this.final_status();
                this.end(outcome)
            }
        }
    }
}
