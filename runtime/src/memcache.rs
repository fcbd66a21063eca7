//! memcache through a [`Channel`], as brpc's memcache client: memcached's binary protocol on
//! the same channels as RPC — naming services, load balancers, retries, timeouts.
//!
//! ```no_run
//! use brisk::memcache::MemcacheRequest;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = brisk::Channel::builder().protocol("memcache").connect("127.0.0.1:11211").await?;
//! let mut request = MemcacheRequest::new();
//! request.set("greeting", "hello", 0, 0, 0).get("greeting");
//! let mut response = channel.memcache(&mut brisk::Controller::new(), &request).await?;
//! let cas = response.pop_set()?;
//! let got = response.pop_get()?;
//! assert_eq!(got.value, "hello");
//! assert_eq!(got.cas, cas);
//! # Ok(()) }
//! ```
//!
//! Many callers share one connection (`single`, the default), their operations pipelined and
//! answered in order; `pooled` and `short` work too. A cluster behind `c_md5` (memcached's
//! ketama hash) or `c_murmurhash` sends each call to the server that keeps its first key.
//! The wire protocol is in [`protocol::memcache`](crate::protocol::memcache).

pub use crate::protocol::memcache::{
    GetResult, Memcache, MemcacheBinary, MemcacheError, MemcacheReply, MemcacheRequest,
    MemcacheResponse, MemcacheStatus,
};

use crate::{errno, Channel, Controller, MethodDescriptor, Status};

/// The method memcache calls are made as, as controllers and metrics see it.
pub const MEMCACHE_METHOD: MethodDescriptor = MethodDescriptor::new("memcache", "memcached");

impl Channel {
    /// Sends `request`'s operations and waits for their responses: brpc's
    /// `channel.CallMethod(NULL, &cntl, &request, &response, NULL)` on a memcache channel. An
    /// operation's failure (a missing key, a CAS conflict) is its response's, read with the
    /// response's `pop_*`; the call fails only when the operations got no responses (timeout,
    /// connection failure, a bad response) or the request cannot be sent (EREQUEST).
    ///
    /// Without a request code on `cntl`, a cluster behind a key-hashing balancer routes by the
    /// first operation's key ([`Channel::request_code_for`]).
    pub async fn memcache(
        &self,
        cntl: &mut Controller,
        request: &MemcacheRequest,
    ) -> Result<MemcacheResponse, Status> {
        if cntl.request_code().is_none() {
            if let Some(code) = request.key().and_then(|key| self.request_code_for(key)) {
                cntl.set_request_code(code);
            }
        }
        let response = self
            .unary::<MemcacheBinary, MemcacheRequest, MemcacheResponse>(
                &MEMCACHE_METHOD,
                cntl,
                request,
            )
            .await?;
        if response.reply_count() != request.operation_count() {
            let status = Status::new(
                errno::ERESPONSE,
                format!(
                    "pipelined_count={} of response does not equal request's={}",
                    response.reply_count(),
                    request.operation_count()
                ),
            );
            cntl.error = Some(status.clone());
            return Err(status);
        }
        Ok(response)
    }

    /// [`memcache`](Channel::memcache), waiting on the current thread: for blocking clients.
    pub fn memcache_blocking(
        &self,
        cntl: &mut Controller,
        request: &MemcacheRequest,
    ) -> Result<MemcacheResponse, Status> {
        self.block_on(self.memcache(cntl, request))
    }
}
