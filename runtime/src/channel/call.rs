//! The unary call path: encode once, then attempt, retrying on a fresh connection while the
//! failure allows it, all under one deadline and one cancellation signal.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{Channel, MethodDescriptor};
use crate::codec::MessageCodec;
use crate::compress::{self, CompressType};
use crate::controller::{CallState, FinishOnDrop};
use crate::protocol::baidu_std::{check_sizes, encode_request_head, RequestHead, HEADER_LEN};
use crate::transport::writer::OutFrame;
use crate::{errno, Controller, Status};

/// Correlation ids, unique per process, so each attempt (retries included) is distinct.
static NEXT_CORRELATION_ID: AtomicU64 = AtomicU64::new(1);

/// A successful attempt: the response's payload, attachment and the connection's addresses.
struct Answer {
    payload: Bytes,
    attachment: Bytes,
    compress_type: CompressType,
    remote: SocketAddr,
    local: SocketAddr,
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
    {
        let started = Instant::now();
        let call_state = cntl.begin_call();
        let _finish = FinishOnDrop(call_state.clone());
        let result = self
            .call::<C, Req, Resp>(method, cntl, request, started, call_state.as_deref())
            .await;
        cntl.latency = started.elapsed();
        if let Err(status) = &result {
            cntl.error = Some(status.clone());
        }
        result
    }

    async fn call<C, Req, Resp>(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &Req,
        started: Instant,
        call_state: Option<&CallState>,
    ) -> Result<Resp, Status>
    where
        C: MessageCodec<Req> + MessageCodec<Resp>,
    {
        let options = &self.inner.options;
        let compress_type = cntl.request_compress_type;
        let payload = encode_payload::<C, Req>(request, compress_type)?;
        let attachment = cntl.request_attachment.clone();
        check_sizes(payload.len(), attachment.len())
            .map_err(|e| Status::new(errno::EREQUEST, format!("request {e}")))?;
        if payload.len() + attachment.len() > options.max_body_size {
            // The server would close the shared connection on it (and retries would repeat
            // that): refuse it here.
            return Err(Status::new(
                errno::EREQUEST,
                format!(
                    "request body of {} bytes exceeds max_body_size={}",
                    payload.len() + attachment.len(),
                    options.max_body_size
                ),
            ));
        }
        let max_retry = cntl.max_retry.unwrap_or(options.max_retry);
        let timeout = cntl.timeout.or(options.timeout);

        let deadline = async {
            // A timeout too large to add to the clock is no deadline at all.
            match timeout.and_then(|t| started.checked_add(t)) {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => pending().await,
            }
        };
        let cancelled = async {
            match call_state {
                Some(state) => state.cancelled().await,
                None => pending().await,
            }
        };
        tokio::pin!(deadline, cancelled);

        let mut last_remote = None;
        let answer = loop {
            let attempt = self.attempt(
                method,
                cntl.log_id,
                compress_type,
                <C as MessageCodec<Req>>::CONTENT_TYPE,
                &payload,
                &attachment,
            );
            let outcome = tokio::select! {
                biased;
                () = &mut cancelled => Err(Status::new(errno::ECANCELED, "the call was cancelled")),
                () = &mut deadline => Err(Status::new(
                    errno::ERPCTIMEDOUT,
                    format!("Reached timeout={}ms @{}", timeout.unwrap_or_default().as_millis(), self.inner.endpoint.addr()),
                )),
                outcome = attempt => outcome,
            };
            match outcome {
                Ok(answer) => break answer,
                Err(status) if status.is_retryable() && cntl.retried_count < max_retry => {
                    cntl.retried_count += 1;
                    last_remote = Some(self.inner.endpoint.addr());
                    tracing::debug!(retry = cntl.retried_count, %status, "retrying call");
                }
                Err(status) => {
                    cntl.remote_side = last_remote.or(Some(self.inner.endpoint.addr()));
                    return Err(status);
                }
            }
        };

        cntl.remote_side = Some(answer.remote);
        cntl.local_side = Some(answer.local);
        cntl.response_compress_type = answer.compress_type;
        cntl.response_attachment = answer.attachment;
        let payload =
            compress::decompress(answer.compress_type, answer.payload, options.max_body_size)
                .map_err(|e| {
                    Status::new(
                        errno::ERESPONSE,
                        format!("Fail to decompress response: {e}"),
                    )
                })?;
        <C as MessageCodec<Resp>>::decode(payload)
            .map_err(|e| Status::new(errno::ERESPONSE, format!("Fail to parse response: {e}")))
    }

    /// One try on one connection.
    async fn attempt(
        &self,
        method: &MethodDescriptor,
        log_id: i64,
        compress_type: CompressType,
        content_type: i32,
        payload: &Bytes,
        attachment: &Bytes,
    ) -> Result<Answer, Status> {
        let options = &self.inner.options;
        let mut conn = self
            .inner
            .endpoint
            .acquire(options.connection_type, options.connect_timeout)
            .await?;
        let correlation_id = NEXT_CORRELATION_ID.fetch_add(1, Ordering::Relaxed);
        let mut head = BytesMut::with_capacity(
            HEADER_LEN + 32 + method.service().len() + method.method().len(),
        );
        encode_request_head(
            &mut head,
            &RequestHead {
                service_name: method.service(),
                method_name: method.method(),
                log_id,
                correlation_id: correlation_id as i64,
                compress_type: compress_type.as_wire(),
                content_type,
                payload_len: payload.len(),
                attachment_len: attachment.len(),
            },
        );
        let frame = OutFrame {
            head: head.freeze(),
            payload: payload.clone(),
            attachment: attachment.clone(),
        };
        let reply = conn.start_call(correlation_id, frame)?.wait().await;
        conn.mark_answered();
        let reply = reply?;

        let response = reply.meta.response.clone().unwrap_or_default();
        let code = response.error_code.unwrap_or(0);
        if code != 0 {
            if code == errno::ELOGOFF {
                conn.mark_logged_off();
            }
            return Err(Status::new(code, response.error_text.unwrap_or_default()));
        }
        let (payload, attachment) = reply
            .split_body()
            .map_err(|e| Status::new(errno::ERESPONSE, e))?;
        let wire_compress = reply.meta.compress_type.unwrap_or(0);
        let compress_type = CompressType::from_wire(wire_compress).ok_or_else(|| {
            Status::new(
                errno::ERESPONSE,
                format!("unsupported compress_type={wire_compress} in response"),
            )
        })?;
        Ok(Answer {
            payload,
            attachment,
            compress_type,
            remote: conn.remote_addr(),
            local: conn.local_addr(),
        })
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
