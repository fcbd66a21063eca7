//! redis through a [`Channel`], as brpc's redis client: the same channels as RPC — naming
//! services, load balancers, retries, backup requests, timeouts — carrying
//! [`RedisRequest`]s.
//!
//! ```no_run
//! use brisk::redis::{RedisRequest, RedisReply};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = brisk::Channel::builder().protocol("redis").connect("127.0.0.1:6379").await?;
//! let mut request = RedisRequest::new();
//! request.add_command(["SET", "greeting", "hello world"]);
//! request.add_command_str("GET greeting")?;
//! let response = channel.redis(&mut brisk::Controller::new(), &request).await?;
//! assert_eq!(response.reply(0), &RedisReply::ok());
//! assert_eq!(response.reply(1).as_str(), Some("hello world"));
//! # Ok(()) }
//! ```
//!
//! Many callers share one connection (`single`, the default): their commands are written
//! together and the replies matched in order. `pooled` and `short` connections work too. A
//! [`RedisAuthenticator`] sends `AUTH` and `SELECT` once per new connection. A cluster behind
//! `c_murmurhash` or `c_md5` sends each call to the server that keeps its first key. The wire
//! protocol is in [`protocol::redis`](crate::protocol::redis).

pub use crate::protocol::redis::{
    Redis, RedisAuthenticator, RedisReply, RedisRequest, RedisResponse, Resp,
};
pub use crate::server::redis::{RedisCommandHandler, RedisContext, RedisService};

use crate::{errno, Channel, Controller, MethodDescriptor, Status};

/// The method redis calls are made as (brpc names it `redis-server`), as controllers and
/// metrics see it.
pub const REDIS_METHOD: MethodDescriptor = MethodDescriptor::new("redis", "redis-server");

impl Channel {
    /// Sends `request`'s commands and waits for their replies: brpc's
    /// `channel.CallMethod(NULL, &cntl, &request, &response, NULL)` on a redis channel. A
    /// command's error is its reply ([`RedisReply::Error`]); the call fails only when the
    /// commands got no replies (timeout, connection failure, a bad reply) or the request cannot
    /// be sent (no commands: EREQUEST).
    ///
    /// Without a request code on `cntl`, a cluster behind a key-hashing balancer routes by the
    /// first command's key ([`Channel::request_code_for`]).
    pub async fn redis(
        &self,
        cntl: &mut Controller,
        request: &RedisRequest,
    ) -> Result<RedisResponse, Status> {
        if cntl.request_code().is_none() {
            if let Some(code) = request.key().and_then(|key| self.request_code_for(key)) {
                cntl.set_request_code(code);
            }
        }
        let response = self
            .unary::<Resp, RedisRequest, RedisResponse>(&REDIS_METHOD, cntl, request)
            .await?;
        if response.reply_count() != request.command_count() {
            let status = Status::new(
                errno::ERESPONSE,
                format!(
                    "pipelined_count={} of response does not equal request's={}",
                    response.reply_count(),
                    request.command_count()
                ),
            );
            cntl.error = Some(status.clone());
            return Err(status);
        }
        Ok(response)
    }

    /// [`redis`](Channel::redis), waiting on the current thread: for blocking clients.
    pub fn redis_blocking(
        &self,
        cntl: &mut Controller,
        request: &RedisRequest,
    ) -> Result<RedisResponse, Status> {
        self.block_on(self.redis(cntl, request))
    }
}
