//! Serving redis: a [`RedisService`] of command handlers, as brpc's
//! `ServerOptions.redis_service`, on the server's one port.
//!
//! A connection that starts with `*` (a RESP array), or with a line of words that no other
//! protocol claims (an inline command, as `telnet` sends), speaks redis. Its commands run one
//! after another, in order, as brpc runs them; the replies to the commands that arrived
//! together are written together.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;

use super::dispatch::panic_message;
use super::protocol::{ServeFuture, ServerProtocol};
use super::state::{wait_for_phase, ConnectionGuard, InflightGuard, Peer, Phase, Shared};
use crate::protocol::redis::resp::{self, Command, MAX_INLINE};
use crate::protocol::redis::RedisReply;
use crate::protocol::Detection;
use crate::transport::read_buffer::read_some;
use crate::transport::sockets::Counted;
use crate::transport::stream::ServerIo;
use crate::Error;

/// What a command handler knows of its connection: who it is, and the session the
/// connection's handlers keep (after `AUTH`, say), as brpc's `RedisConnContext`.
pub struct RedisContext {
    remote: SocketAddr,
    session: Option<Box<dyn Any + Send + Sync>>,
}

impl RedisContext {
    /// The client's address.
    pub fn remote_side(&self) -> SocketAddr {
        self.remote
    }

    /// The connection's session, if one of type `T` was set.
    pub fn session<T: 'static>(&self) -> Option<&T> {
        self.session.as_deref().and_then(|s| s.downcast_ref())
    }

    /// The connection's session, mutably.
    pub fn session_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.session.as_deref_mut().and_then(|s| s.downcast_mut())
    }

    /// Sets the connection's session (replacing any), for later commands on it.
    pub fn set_session<T: Send + Sync + 'static>(&mut self, session: T) {
        self.session = Some(Box::new(session));
    }

    /// Removes the connection's session.
    pub fn clear_session(&mut self) {
        self.session = None;
    }
}

impl std::fmt::Debug for RedisContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisContext")
            .field("remote", &self.remote)
            .field("session", &self.session.is_some())
            .finish()
    }
}

/// A handler for commands that wait (on I/O, on another service): brpc's
/// `RedisCommandHandler`, async. `args[0]` is the command's name, lower-cased. Handlers that
/// answer at once are plain closures ([`RedisService::add_command`]).
///
/// ```
/// use brisk::redis::{RedisCommandHandler, RedisContext, RedisReply};
/// use bytes::Bytes;
///
/// struct Echo;
///
/// impl RedisCommandHandler for Echo {
///     async fn run(&self, _ctx: &mut RedisContext, args: &[Bytes]) -> RedisReply {
///         match args {
///             [_, message] => RedisReply::Bulk(message.clone()),
///             _ => RedisReply::error("ERR wrong number of arguments for 'echo' command"),
///         }
///     }
/// }
/// ```
pub trait RedisCommandHandler: Send + Sync + 'static {
    /// The reply to one command.
    fn run(
        &self,
        ctx: &mut RedisContext,
        args: &[Bytes],
    ) -> impl Future<Output = RedisReply> + Send;
}

type BoxedReply<'a> = Pin<Box<dyn Future<Output = RedisReply> + Send + 'a>>;

/// [`RedisCommandHandler`] behind a pointer.
trait ErasedHandler: Send + Sync {
    fn run_boxed<'a>(&'a self, ctx: &'a mut RedisContext, args: &'a [Bytes]) -> BoxedReply<'a>;
}

impl<H: RedisCommandHandler> ErasedHandler for H {
    fn run_boxed<'a>(&'a self, ctx: &'a mut RedisContext, args: &'a [Bytes]) -> BoxedReply<'a> {
        Box::pin(self.run(ctx, args))
    }
}

type SyncHandler = dyn Fn(&mut RedisContext, &[Bytes]) -> RedisReply + Send + Sync;

enum Handler {
    Sync(Box<SyncHandler>),
    Async(Box<dyn ErasedHandler>),
}

/// The commands a server answers to redis clients, each by name: brpc's `RedisService`.
/// Commands without a handler are answered ``-ERR unknown command `name` `` (the name
/// lower-cased), as brpc answers them. Add it to a server with
/// [`ServerBuilder::redis_service`](crate::ServerBuilder::redis_service).
///
/// ```
/// use brisk::redis::{RedisReply, RedisService};
///
/// let mut service = RedisService::new();
/// service
///     .add_command("ping", |_ctx, args| match args {
///         [_] => RedisReply::status("PONG"),
///         [_, message] => RedisReply::Bulk(message.clone()),
///         _ => RedisReply::error("ERR wrong number of arguments for 'ping' command"),
///     })
///     .unwrap();
/// assert!(service.add_command("PING", |_, _| RedisReply::ok()).is_err(), "once per name");
/// # async fn demo(service: RedisService) -> Result<(), brisk::Error> {
/// let server = brisk::Server::builder().redis_service(service).start("127.0.0.1:0").await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct RedisService {
    handlers: HashMap<String, Handler>,
}

impl RedisService {
    /// A service without commands.
    pub fn new() -> Self {
        RedisService::default()
    }

    /// Answers command `name` (any case) with `handler`, which replies at once. A name
    /// already taken is refused with EINVAL, as brpc's `AddCommandHandler` refuses it.
    pub fn add_command(
        &mut self,
        name: &str,
        handler: impl Fn(&mut RedisContext, &[Bytes]) -> RedisReply + Send + Sync + 'static,
    ) -> Result<&mut Self, Error> {
        self.insert(name, Handler::Sync(Box::new(handler)))
    }

    /// Answers command `name` (any case) with `handler`, which may wait. A name already
    /// taken is refused with EINVAL.
    pub fn add_async_command(
        &mut self,
        name: &str,
        handler: impl RedisCommandHandler,
    ) -> Result<&mut Self, Error> {
        self.insert(name, Handler::Async(Box::new(handler)))
    }

    fn insert(&mut self, name: &str, handler: Handler) -> Result<&mut Self, Error> {
        let name = name.to_ascii_lowercase();
        if name.is_empty() {
            return Err(Error::invalid("a redis command needs a name"));
        }
        if self.handlers.contains_key(&name) {
            return Err(Error::invalid(format!("redis command name={name} exists")));
        }
        self.handlers.insert(name, handler);
        Ok(self)
    }

    /// The command names it answers, lower-cased.
    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// The reply to one command (`args[0]` its name, lower-cased here).
    async fn dispatch(&self, ctx: &mut RedisContext, mut args: Vec<Bytes>) -> RedisReply {
        let name = args[0].to_ascii_lowercase();
        let handler = std::str::from_utf8(&name)
            .ok()
            .and_then(|name| self.handlers.get(name));
        let Some(handler) = handler else {
            return unknown_command(&name);
        };
        if args[0] != name[..] {
            args[0] = Bytes::from(name);
        }
        // A handler that panics answers an error, as handlers of the other protocols do.
        let replied = match handler {
            Handler::Sync(handler) => catch_unwind(AssertUnwindSafe(|| handler(ctx, &args))),
            Handler::Async(handler) => {
                AssertUnwindSafe(handler.run_boxed(ctx, &args))
                    .catch_unwind()
                    .await
            }
        };
        replied.unwrap_or_else(|panic| {
            let what = panic_message(&panic);
            tracing::error!(remote = %ctx.remote, "redis handler panicked: {what}");
            RedisReply::error(format!("ERR handler panicked: {what}"))
        })
    }
}

/// brpc's reply to a command without a handler: its text is cut at 63 bytes, as brpc's
/// 64-byte buffer cuts it.
fn unknown_command(name: &[u8]) -> RedisReply {
    let mut text = b"ERR unknown command `".to_vec();
    text.extend_from_slice(name);
    text.push(b'`');
    text.truncate(63);
    RedisReply::Error(text.into())
}

impl std::fmt::Debug for RedisService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.command_names().collect();
        names.sort_unstable();
        f.debug_struct("RedisService")
            .field("commands", &names)
            .finish()
    }
}

/// redis on the server's port, when it has a [`RedisService`].
pub(crate) struct RedisProtocol(pub(crate) Arc<RedisService>);

impl ServerProtocol for RedisProtocol {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        match prefix.first() {
            // A RESP array's header, `*<count>\r\n`.
            Some(b'*') => {
                let digits = prefix[1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || **b == b'-')
                    .count();
                match &prefix[1 + digits..] {
                    [] | [b'\r'] if digits < 20 => Detection::NeedMore,
                    [b'\r', b'\n', ..] if digits > 0 => Detection::Yes,
                    _ => Detection::No,
                }
            }
            // An inline command: a line of text that no protocol tried before claimed.
            Some(c) if c.is_ascii_alphabetic() => {
                let line = &prefix[..prefix.len().min(MAX_INLINE)];
                match line.iter().position(|&b| b == b'\n') {
                    Some(end) if line[..end].iter().all(|&b| is_text(b)) => Detection::Yes,
                    Some(_) => Detection::No,
                    None if line.iter().all(|&b| is_text(b)) => Detection::NeedMore,
                    None => Detection::No,
                }
            }
            _ => Detection::No,
        }
    }

    fn serve(
        &self,
        io: Counted<ServerIo>,
        prefix: BytesMut,
        peer: Peer,
        shared: Arc<Shared>,
        open: ConnectionGuard,
    ) -> ServeFuture {
        Box::pin(serve_redis(
            io,
            prefix,
            peer,
            shared,
            Arc::clone(&self.0),
            open,
        ))
    }
}

fn is_text(b: u8) -> bool {
    b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b)
}

/// Replies waiting past this many bytes are written before the batch ends.
const FLUSH_AT: usize = 256 * 1024;

/// Writes `out` (and empties it); false if the connection failed or the server closed first.
async fn write(
    io: &mut Counted<ServerIo>,
    out: &mut BytesMut,
    phase: &mut tokio::sync::watch::Receiver<Phase>,
) -> bool {
    let written = tokio::select! {
        written = io.write_all(out) => written,
        () = wait_for_phase(phase, |p| p == Phase::Closed) => return false,
    };
    out.clear();
    match written {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("redis connection: {e}");
            false
        }
    }
}

/// Serves a redis connection until the client leaves, sends what is not RESP, or the server
/// stops.
async fn serve_redis(
    mut io: Counted<ServerIo>,
    mut buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    service: Arc<RedisService>,
    open: ConnectionGuard,
) {
    let _open = open;
    let max_body_size = shared.options.max_body_size;
    let mut phase = shared.phase.subscribe();
    let mut ctx = RedisContext {
        remote: peer.remote,
        session: None,
    };
    let mut out = BytesMut::new();
    // A first command not whole by `first_bytes_timeout` closes the connection.
    let mut first_command_by = peer.first_message_by;
    loop {
        let mut inflight = None;
        let failure = loop {
            match resp::cut_command(&mut buf, max_body_size) {
                Ok(Some(Command::Args(args))) => {
                    first_command_by = None;
                    // The commands being answered count as a request in flight, so a
                    // stopping server waits for their replies.
                    inflight.get_or_insert_with(|| InflightGuard::enter(&shared));
                    io.stats().received(1);
                    service.dispatch(&mut ctx, args).await.encode(&mut out);
                    io.stats().sent(1);
                    // Replies to a long batch go out as they grow, not all at its end.
                    if out.len() >= FLUSH_AT {
                        drop(inflight.take());
                        if !write(&mut io, &mut out, &mut phase).await {
                            return;
                        }
                    }
                }
                Ok(Some(Command::Empty)) => {}
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = &failure {
            tracing::warn!(remote = %peer.remote, "closing redis connection: {e}");
            RedisReply::error(format!("ERR Protocol error: {e}")).encode(&mut out);
        }
        // Answered: a client that does not read its replies must not hold up the server's
        // stop, so the write is not counted (and gives up when the server closes).
        drop(inflight);
        if !out.is_empty() && !write(&mut io, &mut out, &mut phase).await {
            return;
        }
        if failure.is_some() || shared.phase_now() != Phase::Running {
            break;
        }
        // redis's `timeout`: a client silent this long is closed.
        let idle = async {
            match shared.options.idle_timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        let first_command = async {
            match first_command_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = idle => {
                tracing::debug!(remote = %peer.remote, "closing an idle redis connection");
                break;
            }
            () = first_command => {
                tracing::warn!(remote = %peer.remote, "closing redis connection: no whole first command within first_bytes_timeout ({} bytes came)", buf.len());
                break;
            }
            read = read_some(&mut io, &mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(remote = %peer.remote, "redis connection: {e}");
                    break;
                }
            },
            () = wait_for_phase(&mut phase, |p| p != Phase::Running) => break,
        }
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_is_told_by_its_first_bytes() {
        let redis = RedisProtocol(Arc::new(RedisService::new()));
        assert_eq!(redis.detect(b"*1\r\n$4\r\nPING\r\n"), Detection::Yes);
        assert_eq!(redis.detect(b"*12"), Detection::NeedMore);
        assert_eq!(redis.detect(b"*12\r"), Detection::NeedMore);
        assert_eq!(redis.detect(b"*\x00\x01"), Detection::No, "not a count");
        assert_eq!(redis.detect(b"*1\n"), Detection::No);
        assert_eq!(redis.detect(b"PING\r\n"), Detection::Yes);
        assert_eq!(redis.detect(b"PIN"), Detection::NeedMore);
        assert_eq!(redis.detect(b"\x00\x01binary"), Detection::No);
        assert_eq!(redis.detect(b"PRPC\x00\x00\x00\x10\n"), Detection::No);
    }

    #[test]
    fn names_are_unique_in_any_case() {
        let mut service = RedisService::new();
        service.add_command("Get", |_, _| RedisReply::Nil).unwrap();
        let taken = service
            .add_command("GET", |_, _| RedisReply::Nil)
            .unwrap_err();
        assert!(taken.to_string().contains("redis command name=get exists"));
        assert!(service.add_command("", |_, _| RedisReply::Nil).is_err());
    }

    #[tokio::test]
    async fn commands_reach_their_handler_by_lower_cased_name() {
        let mut service = RedisService::new();
        service
            .add_command("echo", |_, args| {
                RedisReply::Array(args.iter().cloned().map(RedisReply::Bulk).collect())
            })
            .unwrap();
        let mut ctx = RedisContext {
            remote: "127.0.0.1:1".parse().unwrap(),
            session: None,
        };
        let args = vec![Bytes::from_static(b"ECHO"), Bytes::from_static(b"Hi")];
        assert_eq!(
            service.dispatch(&mut ctx, args).await,
            RedisReply::Array(vec![RedisReply::bulk("echo"), RedisReply::bulk("Hi")])
        );
        let unknown = vec![Bytes::from_static(b"INCR"), Bytes::from_static(b"k")];
        assert_eq!(
            service.dispatch(&mut ctx, unknown).await,
            RedisReply::error("ERR unknown command `incr`")
        );
        let long = vec![Bytes::from(vec![b'X'; 100])];
        let RedisReply::Error(text) = service.dispatch(&mut ctx, long).await else {
            panic!("an error");
        };
        assert_eq!(text.len(), 63, "cut as brpc's buffer cuts it");
    }

    #[test]
    fn a_session_keeps_its_type() {
        let mut ctx = RedisContext {
            remote: "127.0.0.1:1".parse().unwrap(),
            session: None,
        };
        assert!(ctx.session::<String>().is_none());
        ctx.set_session("alice".to_string());
        assert_eq!(ctx.session::<String>().map(String::as_str), Some("alice"));
        assert!(ctx.session::<u32>().is_none());
        ctx.session_mut::<String>().unwrap().push('!');
        assert_eq!(ctx.session::<String>().unwrap(), "alice!");
        ctx.clear_session();
        assert!(ctx.session::<String>().is_none());
    }
}
