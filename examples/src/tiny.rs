//! `tiny`: a protocol of Brisk's users' own, in one file — what it takes to teach Brisk a new
//! framed protocol, client and server, on the same port as every other.
//!
//! ```text
//! request:  "TINY" | u32 length of the rest | u16 name length | "package.Service/Method" | message
//! response: "TINY" | u32 length of the rest | i32 status (0: OK)  | message, or the error text
//! ```
//!
//! Integers are big-endian. There is no correlation id: responses come back in the order the
//! requests were sent, so Brisk pipelines calls on a connection and the server holds early
//! replies back until those before them are out. [`register`] makes both halves known;
//! channels then select the protocol by name (`.protocol("tiny")`), and every server started
//! afterwards detects it by its magic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use brisk::protocol::{
    ClientCodec, Detection, IncomingRequest, IncomingResponse, Matching, MethodRef, OutFrame,
    OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, ServerCodec,
};
use brisk::{errno, CompressType, Status};

/// What every frame starts with.
pub const MAGIC: &[u8; 4] = b"TINY";

/// The protocol's registered name.
pub const NAME: &str = "tiny";

/// Magic and length.
const HEADER_LEN: usize = 8;

/// Both halves of the protocol.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tiny;

/// Registers `tiny` with Brisk, once per process (later calls do nothing).
pub fn register() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        brisk::protocol::register_client(Tiny).expect("`tiny` is not taken");
        brisk::protocol::register_server(Tiny).expect("`tiny` is not taken");
    });
}

/// A frame whose body is `parts`, one after the other.
fn frame(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    buf.put_slice(MAGIC);
    buf.put_u32(len as u32);
    for part in parts {
        buf.put_slice(part);
    }
    buf.freeze()
}

/// Cuts the body of the next frame off `buf`, once it is whole.
fn cut(buf: &mut BytesMut, max_body_size: usize) -> Result<Option<Bytes>, ParseError> {
    let magic = buf.len().min(MAGIC.len());
    if buf[..magic] != MAGIC[..magic] {
        return Err(ParseError::new("not a tiny frame"));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if len > max_body_size {
        return Err(ParseError::new(format!(
            "a frame of {len} bytes is over max_body_size={max_body_size}"
        )));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    Ok(Some(buf.split_to(len).freeze()))
}

/// A payload without attachment or compression: all `tiny` carries.
fn plain(message: Bytes) -> Payload {
    Payload {
        message,
        ..Payload::default()
    }
}

impl ClientCodec for Tiny {
    fn name(&self) -> &'static str {
        NAME
    }

    fn matching(&self) -> Matching {
        Matching::InOrder
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        if !payload.attachment.is_empty() || payload.compress_type != CompressType::None {
            return Err(Status::new(
                errno::EREQUEST,
                "tiny carries neither attachments nor compression",
            ));
        }
        let method = request.method.to_string();
        let name_len = u16::try_from(method.len())
            .map_err(|_| Status::new(errno::EREQUEST, "method name too long for tiny"))?;
        // The message follows the head without a copy; the length counts it.
        let mut head = BytesMut::with_capacity(HEADER_LEN + 2 + method.len());
        head.put_slice(MAGIC);
        head.put_u32((2 + method.len() + payload.message.len()) as u32);
        head.put_u16(name_len);
        head.put_slice(method.as_bytes());
        Ok(OutFrame {
            head: head.freeze(),
            payload: payload.message.clone(),
            ..OutFrame::default()
        })
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some(mut body) = cut(buf, max_body_size)? else {
            return Ok(None);
        };
        if body.len() < 4 {
            return Err(ParseError::new("a tiny response without its status"));
        }
        let status = body.get_i32();
        Ok(Some(if status == 0 {
            IncomingResponse::ok(0, plain(body))
        } else {
            let text = String::from_utf8_lossy(&body).into_owned();
            IncomingResponse::error(0, Status::new(status, text))
        }))
    }
}

impl ServerCodec for Tiny {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        Detection::by_magic(prefix, MAGIC)
    }

    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError> {
        let Some(mut body) = cut(buf, max_body_size)? else {
            return Ok(None);
        };
        if body.len() < 2 {
            return Err(ParseError::new("a tiny request without its method"));
        }
        let name_len = usize::from(body.get_u16());
        if body.len() < name_len {
            return Err(ParseError::new(
                "a tiny request shorter than its method name",
            ));
        }
        let name = body.split_to(name_len);
        let name = std::str::from_utf8(&name)
            .map_err(|_| ParseError::new("a tiny method name that is not UTF-8"))?;
        let Some((service, method)) = name.rsplit_once('/') else {
            return Err(ParseError::new(format!(
                "`{name}` is not package.Service/Method"
            )));
        };
        Ok(Some(IncomingRequest::new(
            ReplyTo::default(),
            service,
            MethodRef::Name(method.to_owned()),
            plain(body),
        )))
    }

    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
        match response.result {
            Ok(payload) if !payload.attachment.is_empty() => Err(Status::new(
                errno::EINTERNAL,
                "tiny cannot carry a response attachment",
            )),
            Ok(payload) if payload.compress_type != CompressType::None => Err(Status::new(
                errno::EINTERNAL,
                "tiny cannot carry a compressed response",
            )),
            Ok(payload) => Ok(OutFrame::whole(frame(&[
                &0i32.to_be_bytes(),
                &payload.message,
            ]))),
            Err(status) => Ok(OutFrame::whole(frame(&[
                &status.code().to_be_bytes(),
                status.message().as_bytes(),
            ]))),
        }
    }

    fn replies_in_order(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_both_halves() {
        let method = brisk::MethodDescriptor::new("example.EchoService", "Echo");
        let payload = plain(Bytes::from_static(b"\x0a\x02hi"));
        let frame = Tiny
            .encode_request(&OutgoingRequest::new(&method, &payload))
            .unwrap();
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&frame.head);
        wire.extend_from_slice(&frame.payload);
        assert_eq!(
            &wire[..],
            b"TINY\0\0\0\x1e\0\x18example.EchoService/Echo\x0a\x02hi"
        );
        assert_eq!(Tiny.detect(&wire[..2]), Detection::NeedMore);
        assert_eq!(Tiny.detect(&wire), Detection::Yes);
        assert_eq!(Tiny.detect(b"PRPC"), Detection::No);
        // Byte by byte: nothing until the frame is whole.
        let mut buf = BytesMut::new();
        for &byte in &wire[..wire.len() - 1] {
            buf.put_u8(byte);
            assert!(Tiny.decode_request(&mut buf, 1 << 20).unwrap().is_none());
        }
        buf.put_u8(*wire.last().unwrap());
        let decoded = Tiny.decode_request(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(decoded.service, "example.EchoService");
        assert_eq!(decoded.method, MethodRef::Name("Echo".into()));
        assert_eq!(decoded.payload.message, payload.message);
        assert!(buf.is_empty());
        let gzipped = Payload {
            compress_type: CompressType::Gzip,
            ..payload
        };
        let refused = Tiny
            .encode_request(&OutgoingRequest::new(&method, &gzipped))
            .unwrap_err();
        assert_eq!(refused.code(), errno::EREQUEST);
    }

    #[test]
    fn bad_input_is_a_parse_error() {
        let mut wrong_magic = BytesMut::from(&b"PRPC\0\0\0\0"[..]);
        assert!(Tiny.decode_request(&mut wrong_magic, 1 << 20).is_err());
        let mut too_big = BytesMut::from(&b"TINY\x7f\0\0\0"[..]);
        assert!(Tiny.decode_request(&mut too_big, 1 << 20).is_err());
        let mut no_slash = BytesMut::from(&b"TINY\0\0\0\x05\0\x03abc"[..]);
        assert!(Tiny.decode_request(&mut no_slash, 1 << 20).is_err());
        let mut short = BytesMut::from(&b"TINY\0\0\0\x02\0\x09"[..]);
        assert!(Tiny.decode_request(&mut short, 1 << 20).is_err());
    }

    #[test]
    fn responses_carry_status_and_text() {
        let status = Status::new(errno::ENOMETHOD, "no such method");
        let reply_to = ReplyTo::default();
        let server = "127.0.0.1:8000".parse().unwrap();
        let error = OutgoingResponse::new(&reply_to, Err(&status), server);
        let frame = Tiny.encode_response(error).unwrap();
        let mut buf = BytesMut::from(&frame.head[..]);
        let response = Tiny.decode_response(&mut buf, 1 << 20).unwrap().unwrap();
        let got = response.result.unwrap_err();
        assert_eq!(
            (got.code(), got.message()),
            (errno::ENOMETHOD, "no such method")
        );
    }
}
