//! [`RedisRequest`] and [`RedisResponse`], the messages of a redis call, and [`Resp`], the
//! codec that carries them.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::reply::RedisReply;
use super::resp;
use crate::codec::MessageCodec;

/// One or more redis commands, sent together (pipelined, in one write) and answered together:
/// brpc's `RedisRequest`. Each command's arguments are binary-safe.
///
/// ```
/// use brisk::redis::RedisRequest;
/// let mut request = RedisRequest::new();
/// request.add_command(["SET", "k1", "hello world"]);
/// request.add_command_str("GET k1").unwrap();
/// assert_eq!(request.command_count(), 2);
/// assert_eq!(
///     request.as_bytes(),
///     &b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$11\r\nhello world\r\n*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n"[..]
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisRequest {
    encoded: BytesMut,
    commands: usize,
    /// Why the request cannot be sent: a command without arguments was added (brpc's
    /// `has_error()`).
    error: Option<String>,
    /// The first command's key (its second argument), for key-hashing balancers.
    first_key: Option<Bytes>,
}

impl RedisRequest {
    /// An empty request.
    pub fn new() -> Self {
        RedisRequest::default()
    }

    /// Adds a command given as its arguments, the name first: `["SET", "key", "value"]`. A
    /// command without arguments leaves the request unsendable (the call fails with
    /// EREQUEST), as brpc's `AddCommand` does.
    pub fn add_command<I, A>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args: Vec<A> = args.into_iter().collect();
        if args.is_empty() {
            self.error
                .get_or_insert_with(|| "a command needs at least its name".to_owned());
            return self;
        }
        if self.commands == 0 {
            self.first_key = args.get(1).map(|k| Bytes::copy_from_slice(k.as_ref()));
        }
        resp::encode_command(&mut self.encoded, &args);
        self.commands += 1;
        self
    }

    /// Adds a command written as one line, split on spaces as brpc's `AddCommand("SET a b")`
    /// and `redis-cli` split it: `"` or `'` quote an argument holding spaces, and `\` before a
    /// quote escapes it. An unmatched quote or an empty line is refused (and leaves the
    /// request as it was).
    ///
    /// ```
    /// # use brisk::redis::RedisRequest;
    /// let mut request = RedisRequest::new();
    /// request.add_command_str("SET greeting 'hello world'").unwrap();
    /// assert!(request.add_command_str("SET broken 'quote").is_err());
    /// assert_eq!(request.command_count(), 1);
    /// ```
    pub fn add_command_str(&mut self, command: &str) -> Result<&mut Self, crate::Status> {
        let words = resp::split_words(command.as_bytes())
            .map_err(|e| crate::Status::new(crate::errno::EREQUEST, e))?;
        if words.is_empty() {
            return Err(crate::Status::new(
                crate::errno::EREQUEST,
                "an empty command",
            ));
        }
        Ok(self.add_command(words))
    }

    /// How many commands it holds: how many replies answer it.
    pub fn command_count(&self) -> usize {
        self.commands
    }

    /// Whether it holds no command.
    pub fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// Removes every command.
    pub fn clear(&mut self) {
        *self = RedisRequest::default();
    }

    /// The commands as they go on the wire: RESP arrays of bulk strings, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The first command's key (its first argument after the name), which key-hashing
    /// balancers (`c_murmurhash`, `c_md5`) spread a cluster's calls by.
    pub fn key(&self) -> Option<&[u8]> {
        self.first_key.as_deref()
    }

    /// Why it cannot be sent, if it cannot.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl fmt::Debug for RedisRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRequest")
            .field("commands", &self.commands)
            .field("encoded", &String::from_utf8_lossy(&self.encoded))
            .finish()
    }
}

/// The replies to a [`RedisRequest`], one per command, in order: brpc's `RedisResponse`. A
/// command's error is a [`RedisReply::Error`] here, not a failed call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedisResponse {
    replies: Vec<RedisReply>,
}

impl RedisResponse {
    /// A response of `replies`.
    pub fn new(replies: Vec<RedisReply>) -> Self {
        RedisResponse { replies }
    }

    /// How many replies it holds.
    pub fn reply_count(&self) -> usize {
        self.replies.len()
    }

    /// The reply to command `index`.
    ///
    /// # Panics
    /// If `index` is not below [`reply_count`](RedisResponse::reply_count).
    pub fn reply(&self, index: usize) -> &RedisReply {
        &self.replies[index]
    }

    /// The replies.
    pub fn replies(&self) -> &[RedisReply] {
        &self.replies
    }

    /// The replies, owned.
    pub fn into_replies(self) -> Vec<RedisReply> {
        self.replies
    }
}

impl fmt::Display for RedisResponse {
    /// As brpc prints it: the one reply, or `[a, b]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.replies.as_slice() {
            [] => f.write_str("<empty response>"),
            [one] => write!(f, "{one}"),
            many => write!(f, "{}", RedisReply::Array(many.to_vec())),
        }
    }
}

/// The codec of redis calls: a [`RedisRequest`] goes as its RESP commands, and the replies
/// come back as a [`RedisResponse`]. [`Channel::redis`](crate::Channel::redis) uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resp;

// Not a codec for messages in general: left out of "the trait is implemented for" hints.
#[diagnostic::do_not_recommend]
impl MessageCodec<RedisRequest> for Resp {
    fn encode(message: &RedisRequest, dst: &mut BytesMut) -> Result<(), String> {
        check(message)?;
        dst.extend_from_slice(&message.encoded);
        Ok(())
    }

    fn encoded_len(message: &RedisRequest) -> usize {
        message.encoded.len()
    }

    fn decode(src: Bytes) -> Result<RedisRequest, String> {
        let commands = resp::count_commands(&src).map_err(|e| e.to_string())?;
        Ok(RedisRequest {
            encoded: BytesMut::from(&src[..]),
            commands,
            error: None,
            first_key: None,
        })
    }
}

/// brpc's checks before a request goes out.
fn check(request: &RedisRequest) -> Result<(), String> {
    if let Some(error) = &request.error {
        return Err(error.clone());
    }
    if request.commands == 0 {
        return Err("request byte size is empty".to_owned());
    }
    Ok(())
}

// Not a codec for messages in general: left out of "the trait is implemented for" hints.
#[diagnostic::do_not_recommend]
impl MessageCodec<RedisResponse> for Resp {
    fn encode(message: &RedisResponse, dst: &mut BytesMut) -> Result<(), String> {
        for reply in &message.replies {
            reply.encode(dst);
        }
        Ok(())
    }

    fn encoded_len(message: &RedisResponse) -> usize {
        message.replies.len() * 16
    }

    fn decode(src: Bytes) -> Result<RedisResponse, String> {
        resp::parse_replies(&src)
            .map(RedisResponse::new)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_broken_request_cannot_be_sent() {
        let mut dst = BytesMut::new();
        let empty = RedisRequest::new();
        assert_eq!(
            <Resp as MessageCodec<RedisRequest>>::encode(&empty, &mut dst).unwrap_err(),
            "request byte size is empty"
        );
        let mut broken = RedisRequest::new();
        broken.add_command(["PING"]).add_command(Vec::<&str>::new());
        assert!(broken.error().is_some());
        assert!(<Resp as MessageCodec<RedisRequest>>::encode(&broken, &mut dst).is_err());
        assert!(RedisRequest::new().add_command_str("   ").is_err());
    }

    #[test]
    fn the_first_commands_key_is_kept_for_balancers() {
        let mut request = RedisRequest::new();
        request
            .add_command(["GET", "user:1"])
            .add_command(["GET", "user:2"]);
        assert_eq!(request.key(), Some(&b"user:1"[..]));
        assert_eq!(RedisRequest::new().add_command(["PING"]).key(), None);
    }

    #[test]
    fn a_response_prints_as_brpc_prints_it() {
        assert_eq!(RedisResponse::default().to_string(), "<empty response>");
        assert_eq!(RedisResponse::new(vec![RedisReply::ok()]).to_string(), "OK");
        let two = RedisResponse::new(vec![RedisReply::ok(), RedisReply::Integer(2)]);
        assert_eq!(two.to_string(), "[OK, (integer) 2]");
    }
}
