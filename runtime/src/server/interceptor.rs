//! Server interceptors (brpc's `Interceptor`): checks every request passes before its handler
//! runs, on every protocol, with the request's method, peer, metadata and verified identity
//! in view; a refusal answers the request instead of the handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::ServerContext;
use crate::{errno, Status};

/// A check every request passes before its handler runs: brpc's `Interceptor`, given to
/// [`ServerBuilder::interceptor`](crate::ServerBuilder::interceptor).
///
/// It runs after the server found the method, verified the caller's credential and admitted
/// the request past its concurrency limits, on every protocol (gRPC streams when they open;
/// not redis commands, as in brpc, nor the builtin gRPC health and reflection services).
/// It sees the request's [`ServerContext`] (peer, metadata, `auth_context`, deadline) and may
/// change it (set response headers, say). It answers [`Accept`]: accepted, refused with a
/// status (sent as brpc sends it, `Reject by Interceptor: <text>` with the status's code), or a
/// future that decides later, for checks that wait (asking another service, say).
///
/// A closure `Fn(&mut ServerContext, MethodName) -> Result<(), Status>` (or `-> Accept`) is an
/// interceptor.
///
/// ```no_run
/// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
/// use brisk::{errno, Status};
/// use brisk::interceptor::{Accept, Interceptor, MethodName};
///
/// /// Lets only callers that say who they are through, and checks them elsewhere.
/// struct TenantCheck;
///
/// impl Interceptor for TenantCheck {
///     fn accept(&self, cntl: &mut brisk::ServerContext, method: MethodName<'_>) -> Accept {
///         let Some(tenant) = cntl.user_fields().get("tenant").cloned() else {
///             return Accept::reject(Status::new(errno::EPERM, format!("{method} needs a tenant")));
///         };
///         Accept::later(async move {
///             // ... ask a directory about `tenant` ...
///             Ok(())
///         })
///     }
/// }
///
/// let server = brisk::Server::builder()
///     .add_service(service)
///     .interceptor(TenantCheck)
///     // Runs after TenantCheck accepted.
///     .interceptor(|cntl: &mut brisk::ServerContext, method: MethodName<'_>| {
///         tracing::info!("{} calls {method}", cntl.remote_side());
///         Ok(())
///     })
///     .start("127.0.0.1:8000")
///     .await?;
/// # Ok(()) }
/// ```
pub trait Interceptor: Send + Sync + 'static {
    /// Accepts or refuses a request of `method`.
    fn accept(&self, cntl: &mut ServerContext, method: MethodName<'_>) -> Accept;
}

impl<F, R> Interceptor for F
where
    F: Fn(&mut ServerContext, MethodName<'_>) -> R + Send + Sync + 'static,
    R: Into<Accept>,
{
    fn accept(&self, cntl: &mut ServerContext, method: MethodName<'_>) -> Accept {
        self(cntl, method).into()
    }
}

/// The method a request is for: `service()` (`example.EchoService`) and `method()` (`Echo`);
/// shown as `example.EchoService.Echo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodName<'a> {
    service: &'a str,
    method: &'a str,
}

impl<'a> MethodName<'a> {
    pub(crate) fn new(service: &'a str, method: &'a str) -> Self {
        MethodName { service, method }
    }

    /// The service's full name, `example.EchoService`.
    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The method's name, `Echo`.
    pub fn method(&self) -> &'a str {
        self.method
    }
}

impl fmt::Display for MethodName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.method)
    }
}

/// A future deciding a request later.
pub type AcceptFuture = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// An [`Interceptor`]'s verdict: now, or later.
pub struct Accept(Verdict);

enum Verdict {
    Now(Result<(), Status>),
    Later(AcceptFuture),
}

impl Accept {
    /// The request goes on.
    pub fn ok() -> Self {
        Accept(Verdict::Now(Ok(())))
    }

    /// The request is answered with `status` (its text after `Reject by Interceptor: `, as
    /// brpc words it; a code that is not positive becomes EINTERNAL).
    pub fn reject(status: Status) -> Self {
        Accept(Verdict::Now(Err(status)))
    }

    /// Decided by `verdict` once it completes; the handler waits (within the request's
    /// deadline).
    pub fn later(verdict: impl Future<Output = Result<(), Status>> + Send + 'static) -> Self {
        Accept(Verdict::Later(Box::pin(verdict)))
    }
}

impl From<Result<(), Status>> for Accept {
    fn from(verdict: Result<(), Status>) -> Self {
        Accept(Verdict::Now(verdict))
    }
}

impl fmt::Debug for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Verdict::Now(verdict) => f.debug_tuple("Accept::Now").field(verdict).finish(),
            Verdict::Later(_) => f.write_str("Accept::Later(..)"),
        }
    }
}

/// The interceptors of a server, in the order they were added.
pub(crate) type Interceptors = Arc<[Arc<dyn Interceptor>]>;

/// An interceptor that is deciding later, and where the rest of them start.
pub(crate) struct Waiting {
    verdict: AcceptFuture,
    next: usize,
}

/// Runs the interceptors from `from` on a request, in order, while they answer at once:
/// `Ok(None)` when all accepted, `Err` with a refusal in brpc's words, or `Ok(Some(waiting))`
/// when one decides later: [`wait`] finishes the job.
pub(crate) fn intercept(
    interceptors: &[Arc<dyn Interceptor>],
    from: usize,
    cntl: &mut ServerContext,
    method: MethodName<'_>,
) -> Result<Option<Waiting>, Status> {
    for (index, interceptor) in interceptors.iter().enumerate().skip(from) {
        match interceptor.accept(cntl, method).0 {
            Verdict::Now(Ok(())) => {}
            Verdict::Now(Err(status)) => return Err(refused(status)),
            Verdict::Later(verdict) => {
                return Ok(Some(Waiting {
                    verdict,
                    next: index + 1,
                }))
            }
        }
    }
    Ok(None)
}

/// Awaits a waiting interceptor, then runs the rest (awaiting those that wait): `Ok` once all
/// accepted.
pub(crate) async fn wait(
    interceptors: &[Arc<dyn Interceptor>],
    mut waiting: Waiting,
    cntl: &mut ServerContext,
    method: MethodName<'_>,
) -> Result<(), Status> {
    loop {
        waiting.verdict.await.map_err(refused)?;
        match intercept(interceptors, waiting.next, cntl, method)? {
            None => return Ok(()),
            Some(next) => waiting = next,
        }
    }
}

/// Runs every interceptor on a request, awaiting those that wait: `Ok` once all accepted.
pub(crate) async fn intercept_all(
    interceptors: &[Arc<dyn Interceptor>],
    cntl: &mut ServerContext,
    method: MethodName<'_>,
) -> Result<(), Status> {
    match intercept(interceptors, 0, cntl, method)? {
        None => Ok(()),
        Some(waiting) => wait(interceptors, waiting, cntl, method).await,
    }
}

/// A refusal as brpc words it.
fn refused(status: Status) -> Status {
    let code = if status.code() > 0 {
        status.code()
    } else {
        errno::EINTERNAL
    };
    Status::new(code, format!("Reject by Interceptor: {}", status.message()))
}
