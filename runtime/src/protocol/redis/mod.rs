//! redis: RESP, as brpc's `redis` protocol speaks it, byte for byte.
//!
//! A call's [`RedisRequest`] carries one or more commands, each an array of bulk strings,
//! written together; the server answers each command with one reply, in order, and the call's
//! [`RedisResponse`] holds them. RESP has no ids: replies are matched to calls by order
//! ([`Matching::InOrder`]), so many calls still share one connection, their commands
//! pipelined. No handshake is sent unless the channel has a [`RedisAuthenticator`], whose
//! `AUTH` (and `SELECT`) go once, first, on each new connection.
//!
//! RESP2 is what brpc and a fresh connection speak; RESP3's kinds (maps, sets, doubles,
//! booleans, big numbers, verbatim strings, pushes) are parsed too, for a server switched to
//! it with `HELLO 3`. Attributes (`|`) are skipped.
//!
//! A reply that is not RESP (an unknown type byte, a length that is not a number, a missing
//! CRLF), a string or aggregate longer than `max_body_size`, or nesting deeper than 128
//! fails the calls on the connection with ERESPONSE and closes it: the pipeline cannot be
//! trusted after it.

mod reply;
mod request;
pub(crate) mod resp;

use bytes::BytesMut;

pub use reply::RedisReply;
pub use request::{RedisRequest, RedisResponse, Resp};

use super::pipelined::command_frame;
use super::{
    ClientCodec, IncomingResponse, Matching, OutFrame, OutgoingRequest, ParseError, Payload,
};
use crate::auth::{AuthContext, Authenticator};
use crate::{errno, Status};

/// redis, `"redis"`: the client codec. Channels of this protocol call with
/// [`Channel::redis`](crate::Channel::redis).
#[derive(Clone, Copy, Debug, Default)]
pub struct Redis;

impl ClientCodec for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn matching(&self) -> Matching {
        Matching::InOrder
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        // A request of raw bytes through `Channel::unary` could be anything.
        let payload = request.payload;
        let commands = resp::count_commands(&payload.message);
        command_frame("redis", "RESP commands", payload, commands)
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let message = loop {
            let Some(len) = resp::reply_len(buf, max_body_size)? else {
                return Ok(None);
            };
            let reply = buf.split_to(len);
            // A RESP3 push (client tracking, pub/sub) answers no command: matching it to
            // one would shift every reply after it.
            if reply.first() != Some(&b'>') {
                break reply.freeze();
            }
        };
        Ok(Some(IncomingResponse::ok(
            0,
            Payload {
                message,
                ..Payload::default()
            },
        )))
    }

    fn responses_expected(&self, request: &OutgoingRequest<'_>) -> usize {
        // The request was encoded by `Resp` from whole commands.
        resp::count_commands(&request.payload.message).unwrap_or(1)
    }

    /// A [`RedisAuthenticator`]'s credential is its commands; any other authenticator's is a
    /// password, sent as `AUTH <credential>`.
    fn handshake(&self, credential: &[u8]) -> Option<(OutFrame, usize)> {
        if credential.is_empty() {
            return None;
        }
        match resp::count_commands(credential) {
            Ok(commands) if commands > 0 && credential.first() == Some(&b'*') => Some((
                OutFrame::whole(bytes::Bytes::copy_from_slice(credential)),
                commands,
            )),
            _ => {
                let mut auth = BytesMut::new();
                resp::encode_command(&mut auth, &[&b"AUTH"[..], credential]);
                Some((OutFrame::whole(auth.freeze()), 1))
            }
        }
    }

    fn check_handshake(&self, answer: Result<Payload, Status>) -> Result<(), Status> {
        let failed = |why: String| {
            Status::new(
                errno::ERPCAUTH,
                format!("Fail to authenticate with Redis: {why}"),
            )
        };
        let replies = resp::parse_replies(&answer?.message).map_err(|e| failed(e.to_string()))?;
        match replies.iter().find(|reply| **reply != RedisReply::ok()) {
            Some(refused) => Err(failed(refused.to_string())),
            None => Ok(()),
        }
    }
}

/// The credential of a redis channel, as brpc's `RedisAuthenticator`: `AUTH` (with a user, for
/// redis 6's ACLs) and `SELECT` a database, sent once on each new connection before its first
/// command. A reply other than `+OK` to either closes the connection and fails its calls with
/// ERPCAUTH.
///
/// ```
/// use std::sync::Arc;
/// use brisk::redis::RedisAuthenticator;
/// let auth = RedisAuthenticator::new("secret").with_db(2);
/// let builder = brisk::Channel::builder().protocol("redis").authenticator(Arc::new(auth));
/// ```
#[derive(Clone, Default)]
pub struct RedisAuthenticator {
    user: Option<String>,
    password: Option<String>,
    db: Option<u32>,
}

impl RedisAuthenticator {
    /// `AUTH password`.
    pub fn new(password: impl Into<String>) -> Self {
        RedisAuthenticator {
            password: Some(password.into()),
            ..RedisAuthenticator::default()
        }
    }

    /// No `AUTH`; with [`with_db`](RedisAuthenticator::with_db), only `SELECT`.
    pub fn without_password() -> Self {
        RedisAuthenticator::default()
    }

    /// `AUTH user password` instead (redis 6's ACL users).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Also `SELECT db`.
    pub fn with_db(mut self, db: u32) -> Self {
        self.db = Some(db);
        self
    }
}

impl std::fmt::Debug for RedisAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAuthenticator")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

impl Authenticator for RedisAuthenticator {
    /// The `AUTH` and `SELECT` commands, in RESP.
    fn generate_credential(&self) -> Result<String, Status> {
        let mut commands = BytesMut::new();
        if let Some(password) = &self.password {
            match &self.user {
                Some(user) => resp::encode_command(&mut commands, &["AUTH", user, password]),
                None => resp::encode_command(&mut commands, &["AUTH", password]),
            }
        }
        if let Some(db) = self.db {
            resp::encode_command(&mut commands, &["SELECT", &db.to_string()]);
        }
        // Made of UTF-8 strings and ASCII.
        String::from_utf8(commands.to_vec()).map_err(|e| Status::internal(e.to_string()))
    }

    /// A redis credential is for redis servers: a Brisk server does not take it.
    fn verify_credential(
        &self,
        _credential: &str,
        _client: std::net::SocketAddr,
    ) -> Result<AuthContext, Status> {
        Err(Status::new(
            errno::ERPCAUTH,
            "RedisAuthenticator authenticates clients to redis servers only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn the_credential_is_auth_then_select() {
        let auth = RedisAuthenticator::new("123456").with_db(3);
        assert_eq!(
            auth.generate_credential().unwrap(),
            "*2\r\n$4\r\nAUTH\r\n$6\r\n123456\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
        );
        let acl = RedisAuthenticator::new("pw").with_user("alice");
        assert_eq!(
            acl.generate_credential().unwrap(),
            "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$2\r\npw\r\n"
        );
        let (frame, replies) = Redis
            .handshake(auth.generate_credential().unwrap().as_bytes())
            .unwrap();
        assert_eq!(replies, 2);
        assert_eq!(frame.len(), 49);
        assert!(Redis.handshake(b"").is_none(), "nothing to send");
        let (frame, replies) = Redis.handshake(b"plain password").unwrap();
        assert_eq!(
            replies, 1,
            "another authenticator's credential is a password"
        );
        assert_eq!(frame.head, "*2\r\n$4\r\nAUTH\r\n$14\r\nplain password\r\n");
    }

    #[test]
    fn pushes_answer_no_command() {
        let mut buf =
            BytesMut::from(&b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n+OK\r\n>1\r\n"[..]);
        let response = Redis.decode_response(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(response.result.unwrap().message, "+OK\r\n");
        assert_eq!(buf, ">1\r\n", "a push cut short waits");
        assert!(Redis.decode_response(&mut buf, 1 << 20).unwrap().is_none());
    }

    #[test]
    fn only_whole_commands_go_out() {
        let method = crate::MethodDescriptor::new("redis", "redis-server");
        let payload = |bytes: &'static [u8]| Payload {
            message: Bytes::from_static(bytes),
            ..Payload::default()
        };
        for bad in [&b""[..], b"PING\r\n", b"*1\r\n$4\r\nPI"] {
            let payload = payload(bad);
            let error = Redis
                .encode_request(&OutgoingRequest::new(&method, &payload))
                .unwrap_err();
            assert_eq!(error.code(), errno::EREQUEST, "{bad:?}");
        }
        let payload = payload(b"*1\r\n$4\r\nPING\r\n");
        assert!(Redis
            .encode_request(&OutgoingRequest::new(&method, &payload))
            .is_ok());
    }

    #[test]
    fn the_handshake_passes_only_on_ok() {
        let answer = |bytes: &'static [u8]| {
            Ok(Payload {
                message: Bytes::from_static(bytes),
                ..Payload::default()
            })
        };
        assert!(Redis.check_handshake(answer(b"+OK\r\n+OK\r\n")).is_ok());
        let refused = Redis
            .check_handshake(answer(b"-WRONGPASS invalid username-password pair\r\n"))
            .unwrap_err();
        assert_eq!(refused.code(), errno::ERPCAUTH);
        assert_eq!(
            refused.message(),
            "Fail to authenticate with Redis: (error) WRONGPASS invalid username-password pair"
        );
        assert!(Redis
            .check_handshake(answer(b"+OK\r\n-ERR DB index is out of range\r\n"))
            .is_err());
        assert!(
            Redis.check_handshake(answer(b"$2\r\nOK\r\n")).is_err(),
            "+OK, not a bulk OK"
        );
    }
}
