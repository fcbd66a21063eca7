//! The unary call path: encode once, then attempt — on the one server, or on the server the
//! load balancer picks — through the one retry loop ([`super::retry`]), all under one deadline
//! and one cancellation signal. Every attempt on a cluster's server reports how it went to the
//! balancer, the health check and the circuit breaker ([`Report`]).

use std::any::Any;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::cluster::Cluster;
use super::endpoint::Endpoint;
use super::figures::CallRecord;
use super::policy::{BackupRequestPolicy, FixedBackupDelay};
use super::retry::{self, Answered, Candidates, RetrySettings, Round};
use super::target::{ErasedRequest, Reply, Target};
use super::Channel;
use crate::codec::MessageCodec;
use crate::compress::{self, CompressType};
use crate::controller::FinishOnDrop;
use crate::lb::{Backend, CallFeedback, SelectIn};
use crate::protocol::Payload;
use crate::rpcz;
use crate::transport::client::{Answer, Cause, EncodedRequest, Failure};
use crate::transport::stream_rpc::StreamCore;
use crate::{errno, Controller, MethodDescriptor, Status};

impl Channel {
    /// Calls `method` with `request` and waits for the response: the function generated client
    /// stubs call. Options come from `cntl` (falling back to the channel's), and results go back
    /// into it. The returned status, if any, is also in `cntl.error()`.
    pub async fn unary<C, Req, Resp>(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &Req,
    ) -> Result<Resp, Status>
    where
        C: MessageCodec<Req> + MessageCodec<Resp>,
        Req: Send + Sync + 'static,
        Resp: Send + 'static,
    {
        let started = Instant::now();
        // The stream the call offers is settled when the call ends, however it ends; the
        // controller's next call offers none.
        let offered = OfferedStream(
            cntl.offered_stream
                .take()
                .and_then(|stream| stream.downcast::<StreamCore>().ok()),
        );
        let call_state = cntl.begin_call();
        let _finish = FinishOnDrop(call_state.clone());
        let interceptors = &self.inner.options.interceptors;
        // They may set the call's options (its timeout too): asked first.
        let (accepted, refused) = match interceptors.is_empty() {
            true => (0, Ok(())),
            false => interceptors.before(cntl, method),
        };
        let timeout = cntl.timeout.or(self.inner.options.timeout);
        // A timeout too large to add to the clock is no deadline at all.
        let deadline_at = timeout.and_then(|t| started.checked_add(t));
        cntl.deadline = deadline_at;
        // Traced when made from a traced handler, or when rpcz starts a trace here.
        // Ended however the call ends: dropped unfinished, it ends `cancelled`.
        let rpcz_guard = rpcz::SpanGuard::new(rpcz::client_span(
            method,
            &self.inner.options.protocol,
            cntl.log_id.unwrap_or_default(),
        ));
        let rpcz_span = rpcz_guard.span();
        // Bytes of the request and of the response, once known (atomics only so that the
        // call's future, which writes them, stays `Send`).
        let (request_size, response_size) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let call = async {
            refused?;
            let mut encoded = self.encode_request::<C, Req>(cntl, request)?;
            encoded.stream.clone_from(&offered.0);
            let request_bytes = encoded.payload.message.len() + encoded.payload.attachment.len();
            request_size.store(request_bytes, Ordering::Relaxed);
            if let Some(traced) = rpcz_span {
                encoded.trace = Some(traced.ids());
                traced.set_request_size(request_bytes);
            }
            let erased = ErasedRequest {
                encoded,
                typed: request,
                encode: encode_erased::<C, Req>,
                decode: decode_erased::<C, Resp>,
            };
            let reply = self.call_erased(method, cntl, &erased).await?;
            match reply {
                Reply::Encoded(answer) => {
                    let response_bytes = answer.payload.len() + answer.attachment.len();
                    response_size.store(response_bytes, Ordering::Relaxed);
                    if let Some(traced) = rpcz_span {
                        traced.set_response_size(response_bytes);
                    }
                    <C as MessageCodec<Resp>>::decode(answer.payload).map_err(|e| {
                        Status::new(errno::ERESPONSE, format!("Fail to parse response: {e}"))
                    })
                }
                Reply::Decoded(response) => response.downcast::<Resp>().map(|r| *r).map_err(|_| {
                    Status::new(
                        errno::ERESPONSE,
                        format!(
                            "a response merger produced a type other than {}",
                            std::any::type_name::<Resp>()
                        ),
                    )
                }),
            }
        };
        // Inside a span of its own, so users' subscribers see the call (debug level, as
        // tower-http's: free when nothing listens at that level).
        let span = tracing::debug_span!(
            target: "brisk::client",
            "rpc",
            service = method.service(),
            method = method.method(),
            trace_id = tracing::field::Empty,
        );
        if let (Some(traced), false) = (rpcz_span, span.is_disabled()) {
            span.record("trace_id", traced.ids().trace_id_hex());
        }
        let call = tracing::Instrument::instrument(call, span);
        let deadline = async {
            match deadline_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => pending().await,
            }
        };
        let cancelled = async {
            match call_state.as_deref() {
                Some(state) => state.cancelled().await,
                None => pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            () = cancelled => Err(Some(Status::new(errno::ECANCELED, "the call was cancelled"))),
            () = deadline => Err(None),
            result = call => result.map_err(Some),
        };
        // At the deadline the call was dropped, which recorded the server it waited for: brpc
        // names it (`@127.0.0.1:8000`).
        let result = result.map_err(|status| {
            status.unwrap_or_else(|| self.reached_timeout(timeout, cntl.remote_side))
        });
        cntl.latency = started.elapsed();
        if let Err(status) = &result {
            cntl.error = Some(status.clone());
        }
        let code = result.as_ref().map_or_else(|s| s.code().max(1), |_| 0);
        if let Some(figures) = &self.inner.figures {
            let call = CallRecord {
                code,
                latency: cntl.latency,
                request_bytes: request_size.load(Ordering::Relaxed),
                response_bytes: response_size.load(Ordering::Relaxed),
            };
            figures.record(method, &call);
            if let (Some(servers), Some(server)) = (&self.inner.server_figures, cntl.remote_side) {
                servers.record(server, method, &call, || self.servers());
            }
        }
        if let (Some(traced), Some(remote)) = (rpcz_span, cntl.remote_side) {
            traced.set_remote(remote);
        }
        rpcz_guard.finish(code, "answered");
        offered.settle(result.as_ref().err());
        if accepted > 0 {
            interceptors.after(accepted, cntl, method);
        }
        result
    }

    /// Runs a call whose request is already encoded: on this channel's server or cluster, or
    /// through its combo channel. No deadline or cancellation here: the caller races it.
    /// Combo channels call this on their sub-channels.
    pub(crate) async fn call_erased(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &ErasedRequest<'_>,
    ) -> Result<Reply, Status> {
        match &self.inner.target {
            Target::Combo(_) if request.encoded.stream.is_some() => Err(Status::new(
                errno::EREQUEST,
                "a combo channel cannot open a brpc stream: open it on one of its sub-channels",
            )),
            Target::Combo(combo) => combo.call(method, cntl, request).await,
            _ => Ok(Reply::Encoded(
                self.call_encoded(method, cntl, &request.encoded).await?,
            )),
        }
    }

    /// Encodes (and compresses) the request once and checks its size.
    pub(crate) fn encode_request<C: MessageCodec<Req>, Req>(
        &self,
        cntl: &Controller,
        request: &Req,
    ) -> Result<EncodedRequest, Status> {
        let compress_type = cntl.request_compress_type;
        let message = encode_payload::<C, Req>(request, compress_type)?;
        let attachment = cntl.request_attachment.clone();
        let max_body_size = self.inner.options.max_body_size;
        let size = message.len().saturating_add(attachment.len());
        if size > max_body_size {
            // The server would close the shared connection on it (and retries would repeat
            // that): refuse it here.
            return Err(Status::new(
                errno::EREQUEST,
                format!("request body of {size} bytes exceeds max_body_size={max_body_size}"),
            ));
        }
        Ok(EncodedRequest {
            payload: Payload {
                message,
                attachment,
                compress_type,
            },
            content_type: <C as MessageCodec<Req>>::CONTENT_TYPE,
            log_id: cntl.log_id,
            headers: cntl.request_headers.clone(),
            deadline: cntl.deadline,
            stream: None,
            trace: None,
        })
    }

    /// Sends an encoded request to the channel's server or cluster, with retries and backup
    /// requests, and fills `cntl`'s results. No deadline here: the caller races it.
    pub(crate) async fn call_encoded(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &EncodedRequest,
    ) -> Result<Answer, Status> {
        let options = &self.inner.options;
        let deadline = cntl.deadline.or_else(|| {
            cntl.timeout
                .or(options.timeout)
                .and_then(|t| Instant::now().checked_add(t))
        });
        let fixed_backup;
        let backup_policy: Option<&dyn BackupRequestPolicy> = match cntl.backup_request {
            Some(delay) => {
                fixed_backup = FixedBackupDelay(delay);
                Some(&fixed_backup)
            }
            None => options.backup_request_policy.as_deref(),
        };
        // A call that offers a stream makes one attempt: the stream is set up on the
        // connection that answers, and a second attempt could be answered too.
        let one_attempt = request.stream.is_some();
        let settings = RetrySettings {
            max_retry: if one_attempt {
                0
            } else {
                cntl.max_retry.unwrap_or(options.max_retry)
            },
            retry_policy: &*options.retry_policy,
            backup: backup_policy
                .filter(|_| !one_attempt)
                .and_then(|p| Some((p.backup_delay(cntl)?, p))),
        };
        let servers = Servers {
            channel: self,
            deadline,
            attempt: Unary { method, request },
        };
        let result = retry::run(&servers, cntl, &settings).await;
        if let Some(policy) = backup_policy {
            policy.on_call_end(cntl);
        }
        let mut answer = result?;
        cntl.remote_side = Some(answer.remote);
        cntl.local_side = Some(answer.local);
        cntl.response_compress_type = answer.compress_type;
        cntl.response_attachment = answer.attachment.clone();
        cntl.response_headers = std::mem::take(&mut answer.headers);
        Ok(answer)
    }

    /// The server for the next attempt.
    pub(crate) fn pick(
        &self,
        request_code: Option<u64>,
        tried: &[SocketAddr],
    ) -> Result<Picked<'_>, Status> {
        match &self.inner.target {
            Target::Single(endpoint) => Ok(Picked::Single(endpoint)),
            Target::Cluster(cluster) => {
                let backend = cluster.balancer().select(&SelectIn {
                    request_code,
                    excluded: tried,
                })?;
                Ok(Picked::Backend(cluster, backend))
            }
            Target::Combo(_) => Err(Status::new(
                errno::EREQUEST,
                "combo channels have no servers of their own: call through them",
            )),
        }
    }
}

/// The servers of a channel, as the retry loop tries them, with what each attempt does.
pub(crate) struct Servers<'a, A> {
    pub(crate) channel: &'a Channel,
    /// When the call must end: an attempt dropped at it reports a timeout.
    pub(crate) deadline: Option<Instant>,
    pub(crate) attempt: A,
}

/// What one attempt on one server does: a unary call, the opening of a stream.
pub(crate) trait ServerAttempt: Sync {
    /// A successful attempt's result.
    type Output: Send;

    /// The attempt on `server`, which hands `report` (when there is one: a cluster's server)
    /// how it went.
    fn run<'a>(
        &'a self,
        channel: &'a Channel,
        server: &'a Picked<'_>,
        report: Option<Report>,
    ) -> impl std::future::Future<Output = Result<Self::Output, Failure>> + Send + 'a;

    /// Whether a failed call may go on to another attempt at all.
    fn may_retry(&self) -> bool {
        true
    }
}

impl<'c, A: ServerAttempt> Candidates for Servers<'c, A> {
    type Key = SocketAddr;
    type Candidate = Picked<'c>;
    type Output = A::Output;
    type Slot = ();

    fn pick(&self, cntl: &Controller, tried: &[SocketAddr]) -> Result<Picked<'c>, Status> {
        self.channel.pick(cntl.request_code, tried)
    }

    fn key(&self, candidate: &Picked<'c>) -> SocketAddr {
        candidate.addr()
    }

    fn slot(&self, _cntl: &Controller) {}

    fn attempt<'a>(
        &'a self,
        candidate: &'a Picked<'c>,
        _slot: &'a mut (),
    ) -> impl std::future::Future<Output = Result<A::Output, Status>> + Send + 'a {
        // Made before the attempt is first polled, so every attempt reports, also one dropped
        // unfinished (the deadline, a cancel, a winning backup).
        let report = candidate.report(self.deadline);
        // The one server's one shared connection (brpc's single connection type): pooled and
        // short connections fail alone, as brpc's.
        let inner = &self.channel.inner;
        let protocol = inner.protocol.as_ref();
        let connection_type = inner.options.connection_type.unwrap_or_default();
        let single = match (candidate, protocol) {
            (Picked::Single(endpoint), Some(protocol))
                if protocol.shares_connection(connection_type) =>
            {
                Some((endpoint, protocol))
            }
            _ => None,
        };
        let attempt = self.attempt.run(self.channel, candidate, report);
        async move {
            let Some((endpoint, protocol)) = single else {
                return attempt.await.map_err(|failure| failure.status);
            };
            // As brpc's single-server channel: once the server's connection failed, calls fail
            // at once until the health check connects again, instead of each retry
            // reconnecting (and a dropped SYN costing every retry a connect timeout).
            if endpoint.health().is_isolated() {
                return Err(not_connected(endpoint.addr()));
            }
            attempt.await.map_err(|failure| {
                if failure.cause == Cause::Transport
                    && protocol.breaks_shared_connection(failure.status.code())
                {
                    let interval = self.channel.inner.options.health_check_interval;
                    endpoint.isolate(interval, interval, &self.channel.inner.settings);
                }
                failure.status
            })
        }
    }

    fn may_retry(&self, _status: &Status) -> bool {
        self.attempt.may_retry()
    }

    fn record(&self, cntl: &mut Controller, round: Round<Self>) {
        // The server that failed the call, or the one it was waiting for when it was dropped.
        let server = match round.outcome {
            Some((Answered::First, true)) | None => Some(&round.first.0),
            Some((Answered::Backup, true)) => round.backup.as_ref().map(|(picked, ())| picked),
            Some((_, false)) => None,
        };
        if let Some(picked) = server {
            cntl.remote_side = Some(picked.addr());
        }
    }
}

/// A unary call's attempt: the request sent, the answer read.
struct Unary<'a> {
    method: &'a MethodDescriptor,
    request: &'a EncodedRequest,
}

impl ServerAttempt for Unary<'_> {
    type Output = Answer;

    async fn run(
        &self,
        channel: &Channel,
        server: &Picked<'_>,
        mut report: Option<Report>,
    ) -> Result<Answer, Failure> {
        let outcome = server
            .endpoint()
            .connections()
            .call(&channel.inner.settings, self.method, self.request)
            .await;
        if let Some(report) = &mut report {
            report.finish(&outcome);
        }
        outcome
    }
}

/// Where one attempt goes: the one server, or a cluster's server the balancer picked.
pub(crate) enum Picked<'a> {
    Single(&'a Arc<Endpoint>),
    Backend(&'a Arc<Cluster>, Backend),
}

impl Picked<'_> {
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Picked::Single(endpoint) => endpoint.addr(),
            Picked::Backend(_, backend) => backend.addr(),
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        match self {
            Picked::Single(endpoint) => endpoint,
            Picked::Backend(_, backend) => endpoint_of(backend),
        }
    }

    /// The report of an attempt starting now (on a cluster's server; one server alone has
    /// nobody to tell).
    pub(crate) fn report(&self, deadline: Option<Instant>) -> Option<Report> {
        match self {
            Picked::Single(_) => None,
            Picked::Backend(cluster, backend) => Some(Report {
                cluster: Arc::clone(cluster),
                backend: backend.clone(),
                begin: Instant::now(),
                deadline,
                outcome: None,
            }),
        }
    }
}

/// brpc's answer to a call on a single-server channel whose server is down (EHOSTDOWN).
fn not_connected(addr: SocketAddr) -> Status {
    Status::new(errno::EHOSTDOWN, format!("Not connected to {addr} yet"))
}

/// The endpoint behind a cluster's server: clusters make their backends of endpoints.
fn endpoint_of(backend: &Backend) -> &Endpoint {
    backend
        .entry()
        .as_any()
        .downcast_ref::<Endpoint>()
        .expect("a cluster's backends are endpoints")
}

/// Reports an attempt on a cluster's server when it ends, or when it is dropped unfinished
/// (the deadline passed, the call was cancelled, a backup answered first): to the balancer,
/// the health check and the circuit breaker.
pub(crate) struct Report {
    cluster: Arc<Cluster>,
    backend: Backend,
    begin: Instant,
    deadline: Option<Instant>,
    /// The error code (0 on success) and whose doing a failure was, set when the attempt
    /// finished; `None` means it was dropped.
    outcome: Option<(i32, Cause)>,
}

impl Report {
    /// Records how the attempt ended.
    pub(crate) fn finish<T>(&mut self, outcome: &Result<T, Failure>) {
        self.outcome = Some(match outcome {
            Ok(_) => (0, Cause::Server),
            Err(failure) => (failure.status.code(), failure.cause),
        });
    }

    /// Sets when the attempt counts as timed out if it is dropped unfinished: a stream that
    /// opened lives by its own deadline (none unless the caller set one), not the opening's.
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Records the end of a call that got past its start (a stream's last message or error).
    pub(crate) fn finish_with(&mut self, error_code: i32) {
        self.outcome.get_or_insert((error_code, Cause::Server));
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.begin);
        let (error_code, transport, counts_for_breaker) = match self.outcome {
            // Nothing reached the server: the balancer only learns the attempt is over.
            Some((_, Cause::Request)) => (errno::ECANCELED, false, false),
            Some((code, cause)) => (code, cause == Cause::Transport, true),
            None if self.deadline.is_some_and(|d| now >= d) => (errno::ERPCTIMEDOUT, false, true),
            None => (errno::ECANCELED, false, false),
        };
        let options = self.cluster.options();
        self.cluster.balancer().feedback(&CallFeedback {
            backend: &self.backend,
            begin: self.begin,
            latency,
            error_code,
        });
        if matches!(self.outcome, Some((_, Cause::Request))) {
            return;
        }
        let endpoint = endpoint_of(&self.backend);
        let health = endpoint.health();
        let isolate = if transport && error_code == errno::ETIMEDOUT {
            // As brpc: one slow connect is not a dead server; three in a row are.
            health.connect_timed_out()
        } else {
            health.connect_succeeded();
            transport && crate::error::is_connection_failure(error_code)
        };
        let settings = self.cluster.settings();
        if isolate {
            endpoint.isolate(
                options.health_check_interval,
                options.health_check_interval,
                settings,
            );
        } else if options.enable_circuit_breaker
            && counts_for_breaker
            && !health.breaker().on_call_end(error_code, latency)
        {
            let isolation = health.breaker().isolation_duration();
            tracing::warn!(server = %self.backend.addr(), ?isolation, "circuit breaker tripped");
            endpoint.isolate(isolation, options.health_check_interval, settings);
        }
    }
}

/// Encodes (and compresses) the request once; every attempt sends the same bytes.
fn encode_payload<C: MessageCodec<T>, T>(
    request: &T,
    compress_type: CompressType,
) -> Result<Bytes, Status> {
    let buf = C::encode_to_bytes(request)
        .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to serialize request: {e}")))?;
    if compress_type == CompressType::None {
        return Ok(buf);
    }
    compress::compress_to_bytes(compress_type, &buf)
        .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to compress request: {e}")))
}

fn encode_erased<C: MessageCodec<Req>, Req: 'static>(
    request: &(dyn Any + Send + Sync),
) -> Result<Bytes, Status> {
    let request = request.downcast_ref::<Req>().ok_or_else(|| {
        Status::new(
            errno::EREQUEST,
            format!(
                "a call mapper produced a request that is not a {}",
                std::any::type_name::<Req>()
            ),
        )
    })?;
    C::encode_to_bytes(request)
        .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to serialize request: {e}")))
}

fn decode_erased<C: MessageCodec<Resp>, Resp: Send + 'static>(
    payload: Bytes,
) -> Result<Box<dyn Any + Send>, Status> {
    C::decode(payload)
        .map(|r| Box::new(r) as Box<dyn Any + Send>)
        .map_err(|e| Status::new(errno::ERESPONSE, format!("Fail to parse response: {e}")))
}

/// The stream a unary call offers ([`Stream::create`]), settled when the call ends: set up by
/// its reply, or failed with the call's error — or, if the call's future is dropped first,
/// with ECANCELED.
///
/// [`Stream::create`]: crate::stream_rpc::Stream::create
struct OfferedStream(Option<Arc<StreamCore>>);

impl OfferedStream {
    fn settle(mut self, call_failed: Option<&Status>) {
        if let Some(stream) = self.0.take() {
            stream.settle(call_failed);
        }
    }
}

impl Drop for OfferedStream {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            stream.settle(Some(&Status::new(
                errno::ECANCELED,
                "the call was cancelled",
            )));
        }
    }
}
