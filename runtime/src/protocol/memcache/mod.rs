//! memcache: memcached's binary protocol, as brpc's `memcache` protocol speaks it, byte for
//! byte.
//!
//! A call's [`MemcacheRequest`] carries one or more operations (get, set, add, replace,
//! append, prepend, delete, increment, decrement, touch, version, flush), written together;
//! memcached answers each with one response, in order, and the call's [`MemcacheResponse`]
//! holds them. Responses are matched to calls by order ([`Matching::InOrder`]), so many
//! calls share one connection, pipelined. Brisk, as brpc, sends no quiet (`…Q`) operations:
//! every operation is answered.
//!
//! A response that does not start with the response magic (0x81), claims a body past
//! `max_body_size`, or whose extras and key overrun its body fails the calls on the
//! connection with ERESPONSE and closes it.

mod header;
mod message;

use bytes::BytesMut;

pub use message::{
    GetResult, MemcacheBinary, MemcacheError, MemcacheReply, MemcacheRequest, MemcacheResponse,
    MemcacheStatus,
};

use super::pipelined::command_frame;
use super::{
    ClientCodec, IncomingResponse, Matching, OutFrame, OutgoingRequest, ParseError, Payload,
};
use crate::Status;

/// memcache, `"memcache"`: the client codec. Channels of this protocol call with
/// [`Channel::memcache`](crate::Channel::memcache).
#[derive(Clone, Copy, Debug, Default)]
pub struct Memcache;

impl ClientCodec for Memcache {
    fn name(&self) -> &'static str {
        "memcache"
    }

    fn matching(&self) -> Matching {
        Matching::InOrder
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        // A request of raw bytes through `Channel::unary` could be anything.
        let payload = request.payload;
        let operations = header::count_messages(&payload.message, header::MAGIC_REQUEST);
        command_frame("memcache", "binary operations", payload, operations)
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some(len) = header::message_len(buf, header::MAGIC_RESPONSE, max_body_size)? else {
            return Ok(None);
        };
        let message = buf.split_to(len).freeze();
        Ok(Some(IncomingResponse::ok(
            0,
            Payload {
                message,
                ..Payload::default()
            },
        )))
    }

    fn responses_expected(&self, request: &OutgoingRequest<'_>) -> usize {
        // The request was encoded by `MemcacheBinary` from whole operations.
        header::count_messages(&request.payload.message, header::MAGIC_REQUEST).unwrap_or(1)
    }
}
