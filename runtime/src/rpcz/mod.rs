//! rpcz: sampled spans of server and client calls, tied into traces across processes, kept
//! in memory and shown on the `/rpcz` builtin page (brpc's rpcz).
//!
//! Off by default ([`set_enabled`], a server's
//! [`ServerBuilder::rpcz`](crate::ServerBuilder::rpcz), or `/flags/enable_rpcz?setvalue=true`
//! and `/rpcz/enable` on a server with builtin pages). On, up to
//! [`max_spans_per_second`] calls a second start a trace; a call whose caller traces it is
//! always traced, and the calls its handler makes are children of its span. The trace ids
//! travel in baidu_std's `RpcRequestMeta` (brpc's rpcz shows Brisk's calls and Brisk shows
//! brpc's), and in HTTP and gRPC headers: W3C's `traceparent`, and brpc's `x-bd-trace-id`,
//! `x-bd-span-id` and `x-bd-parent-span-id`.
//!
//! A span records its ids, method, protocol, peer, log id, request and response sizes,
//! error code, and its moments: `received`, `handler start`, `handler end` and `replied` on
//! a server, `answered` on a client, and what the handler [`annotate`]s. The most recent
//! [`capacity`] spans are kept.
//!
//! ```
//! brisk::rpcz::set_enabled(true);
//! // In a handler: a note in the call's span, if it is traced.
//! brisk::rpcz::annotate("cache missed");
//! let kept = brisk::rpcz::recent();
//! # brisk::rpcz::set_enabled(false);
//! # drop(kept);
//! ```

mod current;
mod ids;
mod recent;
mod sampling;
mod span;

pub(crate) use current::{client_span, enter, within};
pub use current::{current_span, propagate};
pub use recent::{capacity, recent, set_capacity, DEFAULT_CAPACITY};
pub(crate) use recent::{finish, SpanGuard};
pub use sampling::{
    is_enabled, max_spans_per_second, set_enabled, set_max_spans_per_second,
    DEFAULT_MAX_SPANS_PER_SECOND,
};
pub(crate) use span::ServerCall;
pub use span::{Event, Span, SpanKind, MAX_EVENTS};

use std::borrow::Cow;

pub use crate::protocol::TraceIds;

/// Adds a note, timed now, to the span of the handler running on this thread, if its call is
/// traced (brpc's `TRACEPRINTF`). Costs nothing when it is not.
pub fn annotate(what: impl Into<Cow<'static, str>>) {
    if let Some(span) = current_span() {
        span.annotate(what);
    }
}

/// The trace ids of the handler running on this thread, if its call is traced.
pub fn current() -> Option<TraceIds> {
    current_span().map(|span| span.ids())
}
