//! [`MemcacheRequest`] and [`MemcacheResponse`], the messages of a memcache call, and
//! [`MemcacheBinary`], the codec that carries them.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{self, Opcode, HEADER_LEN, MAGIC_REQUEST};
use crate::codec::MessageCodec;

/// One or more memcache operations, sent together (pipelined, in one write) and answered
/// together, in memcached's binary protocol: brpc's `MemcacheRequest`, byte for byte.
///
/// ```
/// use brisk::memcache::MemcacheRequest;
/// let mut request = MemcacheRequest::new();
/// request.set("greeting", "hello", 0xf1a9, 0, 0).get("greeting").increment("hits", 1, 0, 0);
/// assert_eq!(request.operation_count(), 3);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemcacheRequest {
    encoded: BytesMut,
    operations: usize,
    error: Option<String>,
    first_key: Option<Bytes>,
}

impl MemcacheRequest {
    /// An empty request.
    pub fn new() -> Self {
        MemcacheRequest::default()
    }

    /// Gets `key`'s value, flags and CAS.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(Opcode::Get, key.as_ref(), &[], &[], 0)
    }

    /// Stores `value` under `key`, with `flags`, expiring after `exptime` seconds (0: never;
    /// past 30 days: a Unix time), only if the item's CAS is still `cas` (0: whatever it is).
    pub fn set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        self.store(
            Opcode::Set,
            key.as_ref(),
            value.as_ref(),
            flags,
            exptime,
            cas,
        )
    }

    /// [`set`](MemcacheRequest::set), only if `key` does not exist.
    pub fn add(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        self.store(
            Opcode::Add,
            key.as_ref(),
            value.as_ref(),
            flags,
            exptime,
            cas,
        )
    }

    /// [`set`](MemcacheRequest::set), only if `key` exists.
    pub fn replace(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        self.store(
            Opcode::Replace,
            key.as_ref(),
            value.as_ref(),
            flags,
            exptime,
            cas,
        )
    }

    /// Appends `value` to `key`'s value (which must exist). An empty `value` leaves the
    /// request unsendable (EREQUEST), as brpc refuses it. `flags` and `exptime` are kept for
    /// brpc's signature but not sent: memcached answers an append with extras "Invalid
    /// arguments" and closes the connection, and brpc sends them.
    pub fn append(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        if value.as_ref().is_empty() {
            return self.refuse("value to append must be non-empty");
        }
        let _ = (flags, exptime);
        self.push(Opcode::Append, key.as_ref(), &[], value.as_ref(), cas)
    }

    /// Prepends `value` to `key`'s value (which must exist). An empty `value` leaves the
    /// request unsendable (EREQUEST), as brpc refuses it. `flags` and `exptime` are not sent,
    /// as for [`append`](MemcacheRequest::append).
    pub fn prepend(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        if value.as_ref().is_empty() {
            return self.refuse("value to prepend must be non-empty");
        }
        let _ = (flags, exptime);
        self.push(Opcode::Prepend, key.as_ref(), &[], value.as_ref(), cas)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(Opcode::Delete, key.as_ref(), &[], &[], 0)
    }

    /// Adds `delta` to `key`'s number; a missing key becomes `initial_value`, unless
    /// `exptime` is `0xffffffff` (then it stays missing).
    pub fn increment(
        &mut self,
        key: impl AsRef<[u8]>,
        delta: u64,
        initial_value: u64,
        exptime: u32,
    ) -> &mut Self {
        self.counter(
            Opcode::Increment,
            key.as_ref(),
            delta,
            initial_value,
            exptime,
        )
    }

    /// Subtracts `delta` from `key`'s number (not below 0), as
    /// [`increment`](MemcacheRequest::increment) adds.
    pub fn decrement(
        &mut self,
        key: impl AsRef<[u8]>,
        delta: u64,
        initial_value: u64,
        exptime: u32,
    ) -> &mut Self {
        self.counter(
            Opcode::Decrement,
            key.as_ref(),
            delta,
            initial_value,
            exptime,
        )
    }

    /// Sets `key`'s expiry to `exptime`.
    pub fn touch(&mut self, key: impl AsRef<[u8]>, exptime: u32) -> &mut Self {
        self.push(Opcode::Touch, key.as_ref(), &exptime.to_be_bytes(), &[], 0)
    }

    /// Asks the server's version.
    pub fn version(&mut self) -> &mut Self {
        self.push(Opcode::Version, &[], &[], &[], 0)
    }

    /// Invalidates every item, after `timeout` seconds (0: now).
    pub fn flush(&mut self, timeout: u32) -> &mut Self {
        if timeout == 0 {
            self.push(Opcode::Flush, &[], &[], &[], 0)
        } else {
            self.push(Opcode::Flush, &[], &timeout.to_be_bytes(), &[], 0)
        }
    }

    /// How many operations it holds: how many responses answer it.
    pub fn operation_count(&self) -> usize {
        self.operations
    }

    /// Whether it holds no operation.
    pub fn is_empty(&self) -> bool {
        self.operations == 0
    }

    /// The operations as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The first operation's key, which key-hashing balancers (`c_md5`, memcached's ketama
    /// hash) spread a cluster's calls by.
    pub fn key(&self) -> Option<&[u8]> {
        self.first_key.as_deref()
    }

    /// Why it cannot be sent, if it cannot.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn refuse(&mut self, why: &str) -> &mut Self {
        self.error.get_or_insert_with(|| why.to_owned());
        self
    }

    fn store(
        &mut self,
        opcode: Opcode,
        key: &[u8],
        value: &[u8],
        flags: u32,
        exptime: u32,
        cas: u64,
    ) -> &mut Self {
        let mut extras = [0u8; 8];
        extras[..4].copy_from_slice(&flags.to_be_bytes());
        extras[4..].copy_from_slice(&exptime.to_be_bytes());
        self.push(opcode, key, &extras, value, cas)
    }

    fn counter(
        &mut self,
        opcode: Opcode,
        key: &[u8],
        delta: u64,
        initial_value: u64,
        exptime: u32,
    ) -> &mut Self {
        let mut extras = [0u8; 20];
        extras[..8].copy_from_slice(&delta.to_be_bytes());
        extras[8..16].copy_from_slice(&initial_value.to_be_bytes());
        extras[16..].copy_from_slice(&exptime.to_be_bytes());
        self.push(opcode, key, &extras, &[], 0)
    }

    /// Appends one request: header, extras, key, value.
    fn push(
        &mut self,
        opcode: Opcode,
        key: &[u8],
        extras: &[u8],
        value: &[u8],
        cas: u64,
    ) -> &mut Self {
        if key.len() > header::MAX_KEY_LEN {
            return self.refuse("a key is longer than 250 bytes");
        }
        let Ok(body_len) = u32::try_from(extras.len() + key.len() + value.len()) else {
            return self.refuse("an operation is larger than 4 GiB");
        };
        let buf = &mut self.encoded;
        buf.reserve(HEADER_LEN + body_len as usize);
        buf.put_u8(MAGIC_REQUEST);
        buf.put_u8(opcode as u8);
        buf.put_u16(key.len() as u16);
        buf.put_u8(extras.len() as u8);
        buf.put_u8(0); // data type: raw bytes
        buf.put_u16(0); // vbucket
        buf.put_u32(body_len);
        buf.put_u32(0); // opaque
        buf.put_u64(cas);
        buf.put_slice(extras);
        buf.put_slice(key);
        buf.put_slice(value);
        if self.operations == 0 && !key.is_empty() {
            self.first_key = Some(Bytes::copy_from_slice(key));
        }
        self.operations += 1;
        self
    }
}

impl fmt::Debug for MemcacheRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcacheRequest")
            .field("operations", &self.operations)
            .field("bytes", &self.encoded.len())
            .finish()
    }
}

/// A memcached status (the response header's `status`), as brpc names and words them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemcacheStatus {
    /// 0x00.
    Success,
    /// 0x01, "The key does not exist".
    KeyNotFound,
    /// 0x02, "The key exists" (an `add` of an existing key, or a CAS that no longer
    /// matches).
    KeyExists,
    /// 0x03, "Arg list is too long" (the value is too large).
    TooBig,
    /// 0x04, "Invalid argument".
    InvalidArgument,
    /// 0x05, "Not stored".
    NotStored,
    /// 0x06, "Bad delta" (an increment of a value that is not a number).
    BadDelta,
    /// 0x20, "authentication error".
    AuthError,
    /// 0x21, "authentication continue".
    AuthContinue,
    /// 0x81, "Unknown command".
    UnknownCommand,
    /// 0x82, "Out of memory".
    OutOfMemory,
    /// Another status.
    Other(u16),
}

impl MemcacheStatus {
    /// The status of a response header's `status` field.
    pub fn from_code(code: u16) -> Self {
        match code {
            0x00 => MemcacheStatus::Success,
            0x01 => MemcacheStatus::KeyNotFound,
            0x02 => MemcacheStatus::KeyExists,
            0x03 => MemcacheStatus::TooBig,
            0x04 => MemcacheStatus::InvalidArgument,
            0x05 => MemcacheStatus::NotStored,
            0x06 => MemcacheStatus::BadDelta,
            0x20 => MemcacheStatus::AuthError,
            0x21 => MemcacheStatus::AuthContinue,
            0x81 => MemcacheStatus::UnknownCommand,
            0x82 => MemcacheStatus::OutOfMemory,
            other => MemcacheStatus::Other(other),
        }
    }

    /// brpc's words for it (`MemcacheResponse::status_str`).
    pub fn text(self) -> &'static str {
        match self {
            MemcacheStatus::Success => "SUCCESS",
            MemcacheStatus::KeyNotFound => "The key does not exist",
            MemcacheStatus::KeyExists => "The key exists",
            MemcacheStatus::TooBig => "Arg list is too long",
            MemcacheStatus::InvalidArgument => "Invalid argument",
            MemcacheStatus::NotStored => "Not stored",
            MemcacheStatus::BadDelta => "Bad delta",
            MemcacheStatus::AuthError => "authentication error",
            MemcacheStatus::AuthContinue => "authentication continue",
            MemcacheStatus::UnknownCommand => "Unknown command",
            MemcacheStatus::OutOfMemory => "Out of memory",
            MemcacheStatus::Other(_) => "Unknown status",
        }
    }
}

/// Why an operation did not succeed: the server's status and its text (memcached sends one:
/// `Not found`, `Data exists for key.`), or why its response did not fit the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcacheError {
    /// The server's status; `None` when the response itself was wrong (another operation's,
    /// or malformed).
    pub status: Option<MemcacheStatus>,
    /// The server's text, or what was wrong.
    pub message: String,
}

impl fmt::Display for MemcacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({})", self.message, status.text()),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for MemcacheError {}

/// One operation's response, as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemcacheReply {
    /// The operation it answers.
    pub opcode: u8,
    /// The status.
    pub status: MemcacheStatus,
    /// The item's CAS.
    pub cas: u64,
    /// The extras (a GET's flags).
    pub extras: Bytes,
    /// The key, when the server sends it.
    pub key: Bytes,
    /// The value, or the error text.
    pub value: Bytes,
}

/// A GET's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The value.
    pub value: Bytes,
    /// The flags it was stored with.
    pub flags: u32,
    /// Its CAS, for a later conditional store.
    pub cas: u64,
}

/// The responses to a [`MemcacheRequest`], one per operation, in order: brpc's
/// `MemcacheResponse`. Read them in order with the `pop_*` methods, as brpc's, each checking
/// that the next response answers the operation it names; an operation that failed on the
/// server (a missing key, a CAS conflict) is an `Err` there, not a failed call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemcacheResponse {
    replies: VecDeque<MemcacheReply>,
}

impl MemcacheResponse {
    /// How many responses are left to pop.
    pub fn reply_count(&self) -> usize {
        self.replies.len()
    }

    /// The responses left, in order.
    pub fn replies(&self) -> impl Iterator<Item = &MemcacheReply> {
        self.replies.iter()
    }

    /// The next response, whatever it answers.
    pub fn pop(&mut self) -> Option<MemcacheReply> {
        self.replies.pop_front()
    }

    /// The next response, a GET's.
    pub fn pop_get(&mut self) -> Result<GetResult, MemcacheError> {
        let reply = self.pop_ok(Opcode::Get, "not a GET response")?;
        if reply.extras.len() != 4 {
            return Err(malformed(format!(
                "GET response must have flags as extras, actual length={}",
                reply.extras.len()
            )));
        }
        Ok(GetResult {
            flags: (&reply.extras[..]).get_u32(),
            value: reply.value,
            cas: reply.cas,
        })
    }

    /// The next response, a SET's: the stored item's CAS.
    pub fn pop_set(&mut self) -> Result<u64, MemcacheError> {
        self.pop_store(Opcode::Set)
    }

    /// The next response, an ADD's: the stored item's CAS.
    pub fn pop_add(&mut self) -> Result<u64, MemcacheError> {
        self.pop_store(Opcode::Add)
    }

    /// The next response, a REPLACE's: the stored item's CAS.
    pub fn pop_replace(&mut self) -> Result<u64, MemcacheError> {
        self.pop_store(Opcode::Replace)
    }

    /// The next response, an APPEND's: the item's new CAS.
    pub fn pop_append(&mut self) -> Result<u64, MemcacheError> {
        self.pop_store(Opcode::Append)
    }

    /// The next response, a PREPEND's: the item's new CAS.
    pub fn pop_prepend(&mut self) -> Result<u64, MemcacheError> {
        self.pop_store(Opcode::Prepend)
    }

    /// The next response, a DELETE's.
    pub fn pop_delete(&mut self) -> Result<(), MemcacheError> {
        self.pop_ok(Opcode::Delete, "Not a STORE response")
            .map(drop)
    }

    /// The next response, a FLUSH's.
    pub fn pop_flush(&mut self) -> Result<(), MemcacheError> {
        self.pop_ok(Opcode::Flush, "Not a STORE response").map(drop)
    }

    /// The next response, a TOUCH's.
    pub fn pop_touch(&mut self) -> Result<(), MemcacheError> {
        self.pop_ok(Opcode::Touch, "not a TOUCH response").map(drop)
    }

    /// The next response, an INCREMENT's: the new value.
    pub fn pop_increment(&mut self) -> Result<u64, MemcacheError> {
        self.pop_counter(Opcode::Increment)
    }

    /// The next response, a DECREMENT's: the new value.
    pub fn pop_decrement(&mut self) -> Result<u64, MemcacheError> {
        self.pop_counter(Opcode::Decrement)
    }

    /// The next response, a VERSION's: the server's version.
    pub fn pop_version(&mut self) -> Result<String, MemcacheError> {
        let reply = self.pop_ok(Opcode::Version, "not a VERSION response")?;
        Ok(String::from_utf8_lossy(&reply.value).into_owned())
    }

    fn pop_store(&mut self, opcode: Opcode) -> Result<u64, MemcacheError> {
        Ok(self.pop_ok(opcode, "Not a STORE response")?.cas)
    }

    fn pop_counter(&mut self, opcode: Opcode) -> Result<u64, MemcacheError> {
        let reply = self.pop_ok(opcode, "not a INCR/DECR response")?;
        let value: [u8; 8] = reply.value[..]
            .try_into()
            .map_err(|_| malformed(format!("value_size={} is not 8", reply.value.len())))?;
        Ok(u64::from_be_bytes(value))
    }

    /// The next response if it answers `opcode` and succeeded. A response of another
    /// operation stays, as brpc's `Pop*` leave it.
    fn pop_ok(&mut self, opcode: Opcode, other: &str) -> Result<MemcacheReply, MemcacheError> {
        match self.replies.front() {
            None => return Err(malformed("buffer is too small to contain a header")),
            Some(reply) if reply.opcode != opcode as u8 => return Err(malformed(other)),
            Some(_) => {}
        }
        let reply = self.replies.pop_front().expect("looked at above");
        if reply.status != MemcacheStatus::Success {
            return Err(MemcacheError {
                status: Some(reply.status),
                message: String::from_utf8_lossy(&reply.value).into_owned(),
            });
        }
        Ok(reply)
    }
}

fn malformed(message: impl Into<String>) -> MemcacheError {
    MemcacheError {
        status: None,
        message: message.into(),
    }
}

/// The codec of memcache calls: a [`MemcacheRequest`] goes as its binary operations, and the
/// responses come back as a [`MemcacheResponse`].
/// [`Channel::memcache`](crate::Channel::memcache) uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemcacheBinary;

// Not a codec for messages in general: left out of "the trait is implemented for" hints.
#[diagnostic::do_not_recommend]
impl MessageCodec<MemcacheRequest> for MemcacheBinary {
    fn encode(message: &MemcacheRequest, dst: &mut BytesMut) -> Result<(), String> {
        if let Some(error) = &message.error {
            return Err(error.clone());
        }
        if message.operations == 0 {
            return Err("request byte size is empty".to_owned());
        }
        dst.extend_from_slice(&message.encoded);
        Ok(())
    }

    fn encoded_len(message: &MemcacheRequest) -> usize {
        message.encoded.len()
    }

    fn decode(src: Bytes) -> Result<MemcacheRequest, String> {
        let operations = header::count_messages(&src, MAGIC_REQUEST).map_err(|e| e.to_string())?;
        Ok(MemcacheRequest {
            encoded: BytesMut::from(&src[..]),
            operations,
            error: None,
            first_key: None,
        })
    }
}

// Not a codec for messages in general: left out of "the trait is implemented for" hints.
#[diagnostic::do_not_recommend]
impl MessageCodec<MemcacheResponse> for MemcacheBinary {
    fn encode(message: &MemcacheResponse, dst: &mut BytesMut) -> Result<(), String> {
        for reply in &message.replies {
            let body = reply.extras.len() + reply.key.len() + reply.value.len();
            dst.put_u8(header::MAGIC_RESPONSE);
            dst.put_u8(reply.opcode);
            dst.put_u16(reply.key.len() as u16);
            dst.put_u8(reply.extras.len() as u8);
            dst.put_u8(0);
            dst.put_u16(status_code(reply.status));
            dst.put_u32(body as u32);
            dst.put_u32(0);
            dst.put_u64(reply.cas);
            dst.put_slice(&reply.extras);
            dst.put_slice(&reply.key);
            dst.put_slice(&reply.value);
        }
        Ok(())
    }

    fn encoded_len(message: &MemcacheResponse) -> usize {
        message.replies.len() * HEADER_LEN
    }

    fn decode(src: Bytes) -> Result<MemcacheResponse, String> {
        let mut replies = VecDeque::new();
        let mut at = 0;
        while at < src.len() {
            let head = header::Header::parse(&src[at..]).ok_or("a response is cut short")?;
            let start = at + HEADER_LEN;
            let body = start..start.saturating_add(head.body_len as usize);
            if body.end > src.len() {
                return Err("a response is cut short".into());
            }
            let extras_end = body.start + head.extras_len as usize;
            let key_end = extras_end + head.key_len as usize;
            if key_end > body.end {
                return Err(format!(
                    "extras ({}) and key ({}) overrun the body ({})",
                    head.extras_len, head.key_len, head.body_len
                ));
            }
            replies.push_back(MemcacheReply {
                opcode: head.opcode,
                status: MemcacheStatus::from_code(head.status),
                cas: head.cas,
                extras: src.slice(body.start..extras_end),
                key: src.slice(extras_end..key_end),
                value: src.slice(key_end..body.end),
            });
            at = body.end;
        }
        Ok(MemcacheResponse { replies })
    }
}

fn status_code(status: MemcacheStatus) -> u16 {
    match status {
        MemcacheStatus::Success => 0x00,
        MemcacheStatus::KeyNotFound => 0x01,
        MemcacheStatus::KeyExists => 0x02,
        MemcacheStatus::TooBig => 0x03,
        MemcacheStatus::InvalidArgument => 0x04,
        MemcacheStatus::NotStored => 0x05,
        MemcacheStatus::BadDelta => 0x06,
        MemcacheStatus::AuthError => 0x20,
        MemcacheStatus::AuthContinue => 0x21,
        MemcacheStatus::UnknownCommand => 0x81,
        MemcacheStatus::OutOfMemory => 0x82,
        MemcacheStatus::Other(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes brpc's `MemcacheRequest` builds (memcache.cpp's header structs, in network
    /// order), written out by hand.
    #[test]
    fn requests_are_brpcs_bytes() {
        let mut request = MemcacheRequest::new();
        request.get("k");
        assert_eq!(
            hex(request.as_bytes()),
            concat!(
                "80000001",
                "00000000",
                "00000001",
                "00000000",
                "0000000000000000",
                "6b"
            )
        );
        let mut request = MemcacheRequest::new();
        request.set("k", "v", 0x11223344, 60, 7);
        assert_eq!(
            hex(request.as_bytes()),
            concat!(
                "80010001",
                "08000000",
                "0000000a",
                "00000000",
                "0000000000000007",
                "11223344",
                "0000003c",
                "6b",
                "76"
            )
        );
        let mut request = MemcacheRequest::new();
        request.increment("n", 2, 10, 0);
        assert_eq!(
            hex(request.as_bytes()),
            concat!(
                "80050001",
                "14000000",
                "00000015",
                "00000000",
                "0000000000000000",
                "0000000000000002",
                "000000000000000a",
                "00000000",
                "6e"
            )
        );
        let mut request = MemcacheRequest::new();
        request
            .touch("k", 5)
            .version()
            .flush(0)
            .flush(9)
            .delete("k");
        assert_eq!(request.operation_count(), 5);
        assert_eq!(
            hex(request.as_bytes()),
            concat!(
                "801c0001",
                "04000000",
                "00000005",
                "00000000",
                "0000000000000000",
                "00000005",
                "6b",
                "800b0000",
                "00000000",
                "00000000",
                "00000000",
                "0000000000000000",
                "80080000",
                "00000000",
                "00000000",
                "00000000",
                "0000000000000000",
                "80080000",
                "04000000",
                "00000004",
                "00000000",
                "0000000000000000",
                "00000009",
                "80040001",
                "00000000",
                "00000001",
                "00000000",
                "0000000000000000",
                "6b",
            )
        );
        assert_eq!(
            header::count_messages(request.as_bytes(), MAGIC_REQUEST).unwrap(),
            5
        );
    }

    /// A deliberate difference: brpc sends flags and exptime with APPEND and PREPEND, which
    /// memcached refuses ("Invalid arguments", then it closes the connection).
    #[test]
    fn append_and_prepend_carry_no_extras() {
        let mut request = MemcacheRequest::new();
        request.append("k", "v", 1, 2, 0).prepend("k", "v", 1, 2, 0);
        assert_eq!(
            hex(request.as_bytes()),
            concat!(
                "800e0001",
                "00000000",
                "00000002",
                "00000000",
                "0000000000000000",
                "6b76",
                "800f0001",
                "00000000",
                "00000002",
                "00000000",
                "0000000000000000",
                "6b76",
            )
        );
    }

    #[test]
    fn bad_requests_cannot_be_sent() {
        let mut dst = BytesMut::new();
        let encode = |r: &MemcacheRequest, dst: &mut BytesMut| {
            <MemcacheBinary as MessageCodec<MemcacheRequest>>::encode(r, dst)
        };
        assert_eq!(
            encode(&MemcacheRequest::new(), &mut dst).unwrap_err(),
            "request byte size is empty"
        );
        let mut empty_append = MemcacheRequest::new();
        empty_append.append("k", "", 0, 0, 0);
        assert_eq!(
            encode(&empty_append, &mut dst).unwrap_err(),
            "value to append must be non-empty"
        );
        let mut long_key = MemcacheRequest::new();
        long_key.get("k".repeat(251));
        assert!(encode(&long_key, &mut dst).is_err());
    }

    #[test]
    fn responses_pop_in_order_and_check_their_operation() {
        let replies = [
            MemcacheReply {
                opcode: Opcode::Get as u8,
                status: MemcacheStatus::Success,
                cas: 9,
                extras: Bytes::from_static(&[0, 0, 0, 5]),
                key: Bytes::new(),
                value: Bytes::from_static(b"hello"),
            },
            MemcacheReply {
                opcode: Opcode::Get as u8,
                status: MemcacheStatus::KeyNotFound,
                cas: 0,
                extras: Bytes::new(),
                key: Bytes::new(),
                value: Bytes::from_static(b"Not found"),
            },
            MemcacheReply {
                opcode: Opcode::Increment as u8,
                status: MemcacheStatus::Success,
                cas: 3,
                extras: Bytes::new(),
                key: Bytes::new(),
                value: Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 42]),
            },
        ];
        let mut encoded = BytesMut::new();
        let response = MemcacheResponse {
            replies: replies.iter().cloned().collect(),
        };
        <MemcacheBinary as MessageCodec<MemcacheResponse>>::encode(&response, &mut encoded)
            .unwrap();
        let mut decoded =
            <MemcacheBinary as MessageCodec<MemcacheResponse>>::decode(encoded.freeze()).unwrap();
        assert_eq!(decoded, response);
        assert_eq!(
            decoded.pop_get().unwrap(),
            GetResult {
                value: Bytes::from_static(b"hello"),
                flags: 5,
                cas: 9
            }
        );
        assert_eq!(
            decoded.pop_set().unwrap_err().message,
            "Not a STORE response",
            "another operation's response stays"
        );
        let missing = decoded.pop_get().unwrap_err();
        assert_eq!(missing.status, Some(MemcacheStatus::KeyNotFound));
        assert_eq!(missing.to_string(), "Not found (The key does not exist)");
        assert_eq!(decoded.pop_increment().unwrap(), 42);
        assert!(decoded.pop_version().is_err());
    }
}
