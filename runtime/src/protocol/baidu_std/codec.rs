//! baidu_std as a framed protocol: [`BaiduStd`] is its client and server codec.

use bytes::BytesMut;

use super::{
    check_sizes, decode_frame, encode_head, encode_request_head, response_meta, RequestHead,
    RpcMeta, StreamSettings, MAGIC,
};
use crate::protocol::streaming_rpc::{
    wrap_reply, StreamSetup, INVALID_STREAM_ID, MAGIC as STREAM_MAGIC,
};
use crate::protocol::{
    ClientCodec, Detection, IncomingRequest, IncomingResponse, MethodRef, OutFrame,
    OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, RequestParseFailure,
    ServerCodec, TraceIds,
};
use crate::{errno, CompressType, Status};

/// brpc's default protocol, `"baidu_std"`: both halves, registered by Brisk itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct BaiduStd;

impl ClientCodec for BaiduStd {
    fn name(&self) -> &'static str {
        "baidu_std"
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        check_sizes(payload.message.len(), payload.attachment.len())
            .map_err(|e| Status::new(errno::EREQUEST, format!("request {e}")))?;
        let (service, method) = (request.method.service(), request.method.method());
        // Empty: the encoder reserves the head's exact size, so `freeze` needs no allocation
        // of its own (it makes one when the buffer has room to spare).
        let mut head = BytesMut::new();
        encode_request_head(
            &mut head,
            &RequestHead {
                service_name: service,
                method_name: method,
                log_id: request.log_id,
                timeout_ms: request.timeout_ms(),
                correlation_id: request.correlation_id as i64,
                compress_type: payload.compress_type.as_wire(),
                content_type: request.content_type,
                payload_len: payload.message.len(),
                attachment_len: payload.attachment.len(),
                authentication_data: request.credential,
                user_fields: request.metadata,
                stream: request.stream,
                trace: request.trace,
            },
        );
        Ok(OutFrame {
            head: head.freeze(),
            payload: payload.message.clone(),
            attachment: payload.attachment.clone(),
        })
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some(frame) =
            decode_frame(buf, max_body_size).map_err(|e| ParseError::new(e.to_string()))?
        else {
            return Ok(None);
        };
        let Some(response) = frame.meta.response.as_ref() else {
            return Err(ParseError::new("baidu_std frame without response meta"));
        };
        let id = frame.meta.correlation_id.unwrap_or(0) as u64;
        let stream = frame.meta.stream_settings.as_ref().map(StreamSetup::from);
        let code = response.error_code.unwrap_or(0);
        if code != 0 {
            let text = response.error_text.as_deref().unwrap_or_default();
            let status = Status::from_server_text(code, text);
            let mut response = IncomingResponse::error(id, status);
            response.stream = stream;
            return Ok(Some(response));
        }
        let (message, attachment) = match frame.split_body() {
            Ok(parts) => parts,
            Err(e) => {
                return Ok(Some(IncomingResponse::error(
                    id,
                    Status::new(errno::ERESPONSE, e),
                )))
            }
        };
        let wire = frame.meta.compress_type.unwrap_or(0);
        let Some(compress_type) = CompressType::from_wire(wire) else {
            return Ok(Some(IncomingResponse::error(
                id,
                Status::new(
                    errno::ERESPONSE,
                    format!("unsupported compress_type={wire} in response"),
                ),
            )));
        };
        let mut response = IncomingResponse::ok(
            id,
            Payload {
                message,
                attachment,
                compress_type,
            },
        );
        response.stream = stream;
        Ok(Some(response))
    }

    fn carries_streams(&self) -> bool {
        true
    }
}

impl ServerCodec for BaiduStd {
    fn name(&self) -> &'static str {
        "baidu_std"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        // brpc takes a connection that starts with a stream's frame too (its streaming_rpc
        // protocol is tried beside baidu_std), and answers a frame for an unknown stream.
        match Detection::by_magic(prefix, MAGIC) {
            Detection::No => Detection::by_magic(prefix, STREAM_MAGIC),
            detected => detected,
        }
    }

    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError> {
        let Some(mut frame) =
            decode_frame(buf, max_body_size).map_err(|e| ParseError::new(e.to_string()))?
        else {
            return Ok(None);
        };
        let Some(meta) = frame.meta.request.take() else {
            return Err(ParseError::new("baidu_std frame without request meta"));
        };
        let stream = frame.meta.stream_settings.as_ref().map(StreamSetup::from);
        let reply_to = ReplyTo {
            correlation_id: frame.meta.correlation_id.unwrap_or(0) as u64,
            stream: stream.map(|s| s.stream_id),
            ..ReplyTo::default()
        };
        let mut rejected = None;
        let (message, attachment) = frame.split_body().unwrap_or_else(|_| {
            rejected = Some(Status::new(
                errno::EREQUEST,
                format!(
                    "attachment_size={} is larger than request_size={}",
                    frame.meta.attachment_size.unwrap_or(0),
                    frame.body.len()
                ),
            ));
            Default::default()
        });
        let wire = frame.meta.compress_type.unwrap_or(0);
        let compress_type = CompressType::from_wire(wire).unwrap_or_else(|| {
            rejected.get_or_insert_with(|| {
                Status::new(errno::EREQUEST, format!("unsupported compress_type={wire}"))
            });
            CompressType::None
        });
        let payload = Payload {
            message,
            attachment,
            compress_type,
        };
        let request = IncomingRequest {
            reply_to,
            service: meta.service_name,
            method: MethodRef::Name(meta.method_name),
            payload,
            log_id: meta.log_id.unwrap_or(0),
            timeout_ms: meta.timeout_ms,
            trace: TraceIds::from_brpc_meta(meta.trace_id, meta.span_id, meta.parent_span_id),
            credential: frame.meta.authentication_data.take(),
            metadata: std::mem::take(&mut frame.meta.user_fields),
            rejected,
            stream,
        };
        Ok(Some(request))
    }

    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
        let caller_stream = response.reply_to.stream;
        let server_stream = response.stream;
        let frame = encode_reply(response)?;
        // A call that offered a stream is answered on it, accepted or not (as brpc).
        Ok(match caller_stream {
            Some(caller) => {
                let server = server_stream.map_or(INVALID_STREAM_ID, |s| s.stream_id);
                wrap_reply(caller, server, frame)
            }
            None => frame,
        })
    }

    fn carries_streams(&self) -> bool {
        true
    }

    fn request_parse_failure(&self, failure: &RequestParseFailure<'_>) -> Status {
        // The checksum is always "none": Brisk neither sends nor checks one.
        Status::new(
            errno::EREQUEST,
            format!(
                "Fail to parse request={}, ContentType={}, CompressType={}, ChecksumType=none, \
                 request_size={}",
                failure.message,
                content_type_name(failure.content_type),
                failure.compress_type.name(),
                failure.size
            ),
        )
    }
}

/// A reply's baidu_std frame, announcing the server's stream when it has one; an error reply
/// as brpc writes it: no payload, the code and the text in the meta.
fn encode_reply(response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
    let correlation_id = response.reply_to.correlation_id as i64;
    let stream_settings = response.stream.map(StreamSettings::from);
    let (meta, payload) = match response.result {
        Ok(payload) => {
            check_sizes(payload.message.len(), payload.attachment.len())
                .map_err(|e| Status::internal(format!("response {e}")))?;
            let meta = response_meta(
                correlation_id,
                payload.compress_type.as_wire(),
                payload.attachment.len(),
                None,
            );
            (meta, payload)
        }
        Err(status) => {
            let error = (status.code(), response.error_text(status));
            let meta = response_meta(correlation_id, 0, 0, Some(error));
            (meta, Payload::default())
        }
    };
    let meta = RpcMeta {
        stream_settings,
        ..meta
    };
    // Sized by the encoder, exactly (see `encode_request`).
    let mut head = BytesMut::new();
    encode_head(
        &mut head,
        &meta,
        payload.message.len(),
        payload.attachment.len(),
    );
    Ok(OutFrame {
        head: head.freeze(),
        payload: payload.message,
        attachment: payload.attachment,
    })
}

/// brpc's name for a content type number (`ContentTypeToCStr`).
fn content_type_name(content_type: i32) -> &'static str {
    match content_type {
        0 => "pb",
        1 => "json",
        2 => "proto-json",
        3 => "proto-text",
        _ => "unknown",
    }
}
