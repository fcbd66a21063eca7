//! The unary call path: encode once, then attempt — on the one server, or on the server the
//! load balancer picks — retrying on servers not yet tried while the retry policy allows,
//! with an optional backup request, all under one deadline and one cancellation signal.

use std::any::Any;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::policy::{BackupRequestPolicy, FixedBackupDelay};
use super::{Channel, Endpoint, MethodDescriptor, Target};
use crate::codec::MessageCodec;
use crate::compress::{self, CompressType};
use crate::controller::FinishOnDrop;
use crate::lb::{Backend, CallFeedback, SelectIn};
use crate::protocol::baidu_std::{check_sizes, encode_request_head, RequestHead, HEADER_LEN};
use crate::transport::writer::OutFrame;
use crate::{errno, Controller, Protocol, Status};

/// Correlation ids, unique per process, so each attempt (retries included) is distinct.
static NEXT_CORRELATION_ID: AtomicU64 = AtomicU64::new(1);

/// A request encoded once, sent as is by every attempt.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    pub(crate) payload: Bytes,
    pub(crate) attachment: Bytes,
    pub(crate) compress_type: CompressType,
    pub(crate) content_type: i32,
    pub(crate) log_id: i64,
    /// The controller's request metadata (HTTP headers, gRPC metadata).
    pub(crate) headers: Vec<(String, String)>,
    /// When the call must end: protocols that carry a deadline (gRPC's `grpc-timeout`) send
    /// what is left of it.
    pub(crate) deadline: Option<Instant>,
}

/// A request as combo channels see it: encoded, and also typed (erased) so a call mapper can
/// look at it and replace it.
pub(crate) struct ErasedRequest<'a> {
    pub(crate) encoded: EncodedRequest,
    pub(crate) typed: &'a (dyn Any + Send + Sync),
    /// Encodes a replacement request of the call's request type.
    pub(crate) encode: fn(&(dyn Any + Send + Sync)) -> Result<Bytes, Status>,
    /// Decodes a (decompressed) response payload into the call's response type.
    pub(crate) decode: fn(Bytes) -> Result<Box<dyn Any + Send>, Status>,
}

/// A successful call's response: still encoded (with the connection's addresses), or already
/// decoded and merged by a combo channel.
pub(crate) enum Reply {
    Encoded(Answer),
    Decoded(Box<dyn Any + Send>),
}

/// A successful attempt: the response's (decompressed) payload, attachment and the
/// connection's addresses.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) payload: Bytes,
    pub(crate) attachment: Bytes,
    pub(crate) compress_type: CompressType,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    /// Response metadata (HTTP headers, gRPC headers and trailers).
    pub(crate) headers: Vec<(String, String)>,
}

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
        let call_state = cntl.begin_call();
        let _finish = FinishOnDrop(call_state.clone());
        let timeout = cntl.timeout.or(self.inner.options.timeout);
        // A timeout too large to add to the clock is no deadline at all.
        let deadline_at = timeout.and_then(|t| started.checked_add(t));
        cntl.deadline = deadline_at;
        let call = async {
            let encoded = self.encode_request::<C, Req>(cntl, request)?;
            let erased = ErasedRequest {
                encoded,
                typed: request,
                encode: encode_erased::<C, Req>,
                decode: decode_erased::<C, Resp>,
            };
            let reply = self.call_erased(method, cntl, &erased).await?;
            match reply {
                Reply::Encoded(answer) => <C as MessageCodec<Resp>>::decode(answer.payload)
                    .map_err(|e| {
                        Status::new(errno::ERESPONSE, format!("Fail to parse response: {e}"))
                    }),
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
            () = cancelled => Err(Status::new(errno::ECANCELED, "the call was cancelled")),
            () = deadline => Err(Status::new(
                errno::ERPCTIMEDOUT,
                format!("Reached timeout={}ms @{}", timeout.unwrap_or_default().as_millis(), self.describe_target()),
            )),
            result = call => result,
        };
        cntl.latency = started.elapsed();
        if let Err(status) = &result {
            cntl.error = Some(status.clone());
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
        let payload = encode_payload::<C, Req>(request, compress_type)?;
        let attachment = cntl.request_attachment.clone();
        check_sizes(payload.len(), attachment.len())
            .map_err(|e| Status::new(errno::EREQUEST, format!("request {e}")))?;
        let max_body_size = self.inner.options.max_body_size;
        if payload.len() + attachment.len() > max_body_size {
            // The server would close the shared connection on it (and retries would repeat
            // that): refuse it here.
            return Err(Status::new(
                errno::EREQUEST,
                format!(
                    "request body of {} bytes exceeds max_body_size={max_body_size}",
                    payload.len() + attachment.len(),
                ),
            ));
        }
        Ok(EncodedRequest {
            payload,
            attachment,
            compress_type,
            content_type: <C as MessageCodec<Req>>::CONTENT_TYPE,
            log_id: cntl.log_id,
            headers: cntl.request_headers.clone(),
            deadline: cntl.deadline,
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
        let max_retry = cntl.max_retry.unwrap_or(options.max_retry);
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
        let backup_delay = backup_policy.and_then(|p| p.backup_delay(cntl));
        let mut tried: Vec<SocketAddr> = Vec::new();
        let result = loop {
            let server = match self.pick(cntl.request_code, &tried) {
                Ok(server) => server,
                // Nothing left to try: the last attempt's error says more than EHOSTDOWN,
                // and the retry counted for it was never sent.
                Err(status) => {
                    if let Some(last) = cntl.error.take() {
                        cntl.retried_count = cntl.retried_count.saturating_sub(1);
                        break Err(last);
                    }
                    break Err(status);
                }
            };
            let addr = server.addr();
            let first = self.attempt_on(server, method, request, deadline);
            tokio::pin!(first);
            let outcome = match backup_delay {
                Some(delay) if cntl.retried_count < max_retry => {
                    tokio::select! {
                        outcome = &mut first => outcome,
                        () = tokio::time::sleep(delay) => {
                            match self.backup(cntl, backup_policy, &mut tried, addr, max_retry) {
                                Some(second_server) => {
                                    let second = self.attempt_on(second_server, method, request, deadline);
                                    first_success(first, second).await
                                }
                                None => first.await,
                            }
                        }
                    }
                }
                _ => first.await,
            };
            match outcome {
                Ok(answer) => break Ok(answer),
                Err(status) => {
                    if !tried.contains(&addr) {
                        tried.push(addr);
                    }
                    cntl.remote_side = Some(addr);
                    let retry = cntl.retried_count < max_retry
                        && options.retry_policy.do_retry(&status, cntl);
                    if !retry {
                        break Err(status);
                    }
                    cntl.retried_count += 1;
                    tracing::debug!(retry = cntl.retried_count, %status, "retrying call");
                    // Kept so that running out of servers reports it.
                    cntl.error = Some(status);
                }
            }
        };
        cntl.error = None;
        if let Some(policy) = backup_policy {
            policy.on_call_end(cntl);
        }
        let answer = result?;
        cntl.remote_side = Some(answer.remote);
        cntl.local_side = Some(answer.local);
        cntl.response_compress_type = answer.compress_type;
        cntl.response_attachment = answer.attachment.clone();
        cntl.response_headers.clone_from(&answer.headers);
        Ok(answer)
    }

    /// Decides on a backup request once its delay has passed; the server it goes to.
    fn backup(
        &self,
        cntl: &mut Controller,
        policy: Option<&dyn BackupRequestPolicy>,
        tried: &mut Vec<SocketAddr>,
        first: SocketAddr,
        max_retry: u32,
    ) -> Option<Picked<'_>> {
        if cntl.retried_count >= max_retry || !policy.is_some_and(|p| p.do_backup(cntl)) {
            return None;
        }
        tried.push(first);
        let server = self.pick(cntl.request_code, tried).ok()?;
        if !tried.contains(&server.addr()) {
            tried.push(server.addr());
        }
        cntl.retried_count += 1;
        tracing::debug!(first = %first, backup = %server.addr(), "sending a backup request");
        Some(server)
    }

    /// The server for the next attempt.
    fn pick(&self, request_code: Option<u64>, tried: &[SocketAddr]) -> Result<Picked<'_>, Status> {
        match &self.inner.target {
            Target::Single(endpoint) => Ok(Picked::Single(endpoint)),
            Target::Cluster(cluster) => {
                let backend = cluster.balancer().select(&SelectIn {
                    request_code,
                    excluded: tried,
                })?;
                Ok(Picked::Backend(backend))
            }
            Target::Combo(_) => Err(Status::internal("combo channels have no servers")),
        }
    }

    /// One attempt on `server`, reporting its outcome to the balancer, the circuit breaker and
    /// the health check (also when the attempt is dropped unfinished). The report is made
    /// here, before the future is first polled, so every select gets its feedback.
    fn attempt_on<'a>(
        &'a self,
        server: Picked<'a>,
        method: &'a MethodDescriptor,
        request: &'a EncodedRequest,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<Answer, Status>> + 'a {
        let mut target = match server {
            Picked::Single(endpoint) => Err(endpoint),
            Picked::Backend(backend) => Ok(Report {
                channel: self,
                backend,
                begin: Instant::now(),
                deadline,
                outcome: None,
            }),
        };
        async move {
            let outcome = match &target {
                Err(endpoint) => self.attempt(endpoint, method, request).await,
                Ok(report) => {
                    self.attempt(report.backend.endpoint(), method, request)
                        .await
                }
            };
            if let Ok(report) = &mut target {
                report.outcome = Some(match &outcome {
                    Ok(_) => (0, false),
                    Err(failure) => (failure.status.code(), failure.transport),
                });
            }
            outcome.map_err(|failure| failure.status)
        }
    }

    /// One try on one connection.
    async fn attempt(
        &self,
        endpoint: &Arc<Endpoint>,
        method: &MethodDescriptor,
        request: &EncodedRequest,
    ) -> Result<Answer, Failure> {
        let options = &self.inner.options;
        match options.protocol {
            Protocol::BaiduStd => {}
            // Boxed: their state machines are large, and inlined they would grow every
            // baidu_std call's future (and the stack of nested combo channels) with them.
            Protocol::Http => {
                return Box::pin(crate::transport::http::attempt(
                    endpoint, options, method, request,
                ))
                .await
            }
            Protocol::Grpc => {
                return Box::pin(crate::transport::grpc::attempt(
                    endpoint, options, method, request,
                ))
                .await
            }
        }
        let mut conn = endpoint
            .acquire(options.connection_type, options.connect_timeout)
            .await
            .map_err(Failure::transport)?;
        let credential = if conn.needs_credential() {
            options
                .authenticator
                .as_deref()
                .map(generate_credential)
                .transpose()
                .map_err(Failure::server)?
        } else {
            None
        };
        let correlation_id = NEXT_CORRELATION_ID.fetch_add(1, Ordering::Relaxed);
        let mut head = BytesMut::with_capacity(
            HEADER_LEN + 32 + method.service().len() + method.method().len(),
        );
        encode_request_head(
            &mut head,
            &RequestHead {
                service_name: method.service(),
                method_name: method.method(),
                log_id: request.log_id,
                correlation_id: correlation_id as i64,
                compress_type: request.compress_type.as_wire(),
                content_type: request.content_type,
                payload_len: request.payload.len(),
                attachment_len: request.attachment.len(),
                authentication_data: credential.as_deref().map(str::as_bytes),
                user_fields: &request.headers,
            },
        );
        let frame = OutFrame {
            head: head.freeze(),
            payload: request.payload.clone(),
            attachment: request.attachment.clone(),
        };
        let reply = conn
            .start_call(correlation_id, frame)
            .map_err(Failure::transport)?
            .wait()
            .await;
        conn.mark_answered();
        let reply = reply.map_err(Failure::transport)?;
        conn.mark_server_answered();

        let response = reply.meta.response.clone().unwrap_or_default();
        let code = response.error_code.unwrap_or(0);
        if code != 0 {
            let status = Status::new(code, response.error_text.unwrap_or_default());
            if code == errno::ELOGOFF {
                // The server is stopping: no new calls on this connection, and (in a
                // cluster) none to this server until it is back.
                conn.mark_logged_off();
                return Err(Failure::transport(status));
            }
            return Err(Failure::server(status));
        }
        let (payload, attachment) = reply
            .split_body()
            .map_err(|e| Failure::server(Status::new(errno::ERESPONSE, e)))?;
        let wire_compress = reply.meta.compress_type.unwrap_or(0);
        let compress_type = CompressType::from_wire(wire_compress).ok_or_else(|| {
            Failure::server(Status::new(
                errno::ERESPONSE,
                format!("unsupported compress_type={wire_compress} in response"),
            ))
        })?;
        let payload =
            compress::decompress(compress_type, payload, options.max_body_size).map_err(|e| {
                Failure::server(Status::new(
                    errno::ERESPONSE,
                    format!("Fail to decompress response: {e}"),
                ))
            })?;
        Ok(Answer {
            payload,
            attachment,
            compress_type,
            remote: conn.remote_addr(),
            local: conn.local_addr(),
            headers: Vec::new(),
        })
    }
}

/// The credential an authenticator generates for a request; its failure is ERPCAUTH.
pub(crate) fn generate_credential(
    authenticator: &dyn crate::Authenticator,
) -> Result<String, Status> {
    authenticator.generate_credential().map_err(|e| {
        Status::new(
            errno::ERPCAUTH,
            format!("Fail to generate credential: {}", e.message()),
        )
    })
}

/// Where one attempt goes.
pub(crate) enum Picked<'a> {
    Single(&'a Arc<Endpoint>),
    Backend(Backend),
}

impl Picked<'_> {
    fn addr(&self) -> SocketAddr {
        match self {
            Picked::Single(endpoint) => endpoint.addr(),
            Picked::Backend(backend) => backend.addr(),
        }
    }
}

/// Why an attempt failed, and whether the connection (not the server's answer) failed.
pub(crate) struct Failure {
    pub(crate) status: Status,
    /// Connecting, writing or reading failed, or the server is stopping: the server may be
    /// down. Errors the server answered with never isolate it.
    pub(crate) transport: bool,
}

impl Failure {
    /// Connecting, writing or reading failed, or the server is going away.
    pub(crate) fn transport(status: Status) -> Self {
        Failure {
            status,
            transport: true,
        }
    }

    /// The server answered with an error (or an undecodable response).
    pub(crate) fn server(status: Status) -> Self {
        Failure {
            status,
            transport: false,
        }
    }
}

/// Reports an attempt on a cluster's server when it ends, or when it is dropped unfinished
/// (the deadline passed, the call was cancelled, a backup answered first).
struct Report<'a> {
    channel: &'a Channel,
    backend: Backend,
    begin: Instant,
    deadline: Option<Instant>,
    /// The error code (0 on success) and whether it was a transport failure, set when the
    /// attempt finished; `None` means it was dropped.
    outcome: Option<(i32, bool)>,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.begin);
        let (error_code, transport, counts_for_breaker) = match self.outcome {
            Some((code, transport)) => (code, transport, true),
            None if self.deadline.is_some_and(|d| now >= d) => (errno::ERPCTIMEDOUT, false, true),
            None => (errno::ECANCELED, false, false),
        };
        let options = &self.channel.inner.options;
        if let Target::Cluster(cluster) = &self.channel.inner.target {
            cluster.balancer().feedback(&CallFeedback {
                backend: &self.backend,
                begin: self.begin,
                latency,
                error_code,
            });
        }
        let endpoint = self.backend.endpoint();
        let health = endpoint.health();
        let isolate = if transport && error_code == errno::ETIMEDOUT {
            // As brpc: one slow connect is not a dead server; three in a row are.
            health.connect_timed_out()
        } else {
            health.connect_succeeded();
            transport && crate::error::is_connection_failure(error_code)
        };
        if isolate {
            endpoint.isolate(
                options.health_check_interval,
                options.health_check_interval,
                options.connect_timeout,
            );
        } else if options.enable_circuit_breaker
            && counts_for_breaker
            && !health.breaker().on_call_end(error_code, latency)
        {
            let isolation = health.breaker().isolation_duration();
            tracing::warn!(server = %self.backend.addr(), ?isolation, "circuit breaker tripped");
            endpoint.isolate(
                isolation,
                options.health_check_interval,
                options.connect_timeout,
            );
        }
    }
}

/// Waits for the first of two attempts to succeed; if both fail, the later failure.
async fn first_success<A, B>(first: A, second: B) -> Result<Answer, Status>
where
    A: std::future::Future<Output = Result<Answer, Status>>,
    B: std::future::Future<Output = Result<Answer, Status>>,
{
    tokio::pin!(first, second);
    tokio::select! {
        outcome = &mut first => match outcome {
            Ok(answer) => Ok(answer),
            Err(_) => second.await,
        },
        outcome = &mut second => match outcome {
            Ok(answer) => Ok(answer),
            Err(_) => first.await,
        },
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
    let mut compressed = BytesMut::with_capacity(buf.len() / 2 + 16);
    compress::compress(compress_type, &buf, &mut compressed)
        .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to compress request: {e}")))?;
    Ok(compressed.freeze())
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
