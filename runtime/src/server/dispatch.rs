//! What every protocol does with a request once it is read: find its method, and run the
//! handler without letting a panic take anything else down.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::registry::Registry;
use super::state::Shared;
use super::{ServerContext, Service, ServiceFuture, ServiceResponse};
use crate::protocol::MethodRef;
use crate::{errno, Status};

/// The service and method index a request names; ENOSERVICE or ENOMETHOD as brpc answers
/// (a name without a package is looked up as a short service name first).
pub(crate) fn find_method<'r>(
    registry: &'r Registry,
    service: &str,
    method: &MethodRef,
) -> Result<(&'r Arc<dyn Service>, usize), Status> {
    let found = match method {
        MethodRef::Name(name) => registry.find(service, name),
        MethodRef::Index(index) => registry.find_index(service, *index),
    };
    if let Some(found) = found {
        return Ok(found);
    }
    if !service.contains('.') && !registry.has_service(service) {
        Err(Status::new(
            errno::ENOSERVICE,
            format!("Fail to find service={service}"),
        ))
    } else {
        Err(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={service}/{method}"),
        ))
    }
}

/// A request being served: runs the handler and queues the reply.
pub(crate) type RequestTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Polls a request once on the connection's own task: a handler that answers without waiting
/// (most do) costs no spawned task and no trip through the scheduler. One that has to wait
/// moves to a task of its own, so the connection's requests still run concurrently. (brpc runs
/// the last request of each read in place for the same reason.)
pub(crate) async fn run_inline_or_spawn(request: RequestTask) {
    let mut request = Some(request);
    std::future::poll_fn(move |cx| {
        if let Some(mut request) = request.take() {
            if request.as_mut().poll(cx).is_pending() {
                // Its next poll, on the new task, registers that task's waker instead.
                tokio::spawn(request);
            }
        }
        Poll::Ready(())
    })
    .await
}

/// Runs a unary handler for a request: a panic becomes EINTERNAL (and is logged), and a handler
/// still running at the caller's deadline ([`ServerContext::deadline`]) is cancelled — its
/// future dropped — and answered with ERPCTIMEDOUT, and the server counts it.
pub(crate) async fn run_handler(
    shared: &Shared,
    service: &dyn Service,
    method: usize,
    context: ServerContext,
    payload: Bytes,
) -> Result<ServiceResponse, Status> {
    let deadline = context.deadline;
    let timeout_ms = context.timeout_ms;
    let remote = context.remote_side;
    let call = call_catching_panics(service, method, context, payload);
    let outcome = match deadline {
        None => call.await,
        Some(at) => match tokio::time::timeout_at(at.into(), call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                shared.count_past_deadline();
                return Err(past_deadline(timeout_ms));
            }
        },
    };
    outcome.map_err(|panic| {
        let what = panic_message(&panic);
        tracing::error!(%remote, "handler panicked: {what}");
        Status::internal(format!("handler panicked: {what}"))
    })
}

/// The answer to a call whose handler was cancelled at the client's deadline.
pub(crate) fn past_deadline(timeout_ms: Option<i32>) -> Status {
    Status::new(
        errno::ERPCTIMEDOUT,
        format!(
            "Reached timeout={}ms: the handler was cancelled",
            timeout_ms.unwrap_or_default()
        ),
    )
}

/// Runs `service.call`, turning a panic (while building the future or while polling it) into an
/// `Err` instead of a lost request.
pub(crate) async fn call_catching_panics(
    service: &dyn Service,
    method: usize,
    context: ServerContext,
    payload: Bytes,
) -> Result<ServiceResponse, Box<dyn Any + Send>> {
    let future =
        std::panic::catch_unwind(AssertUnwindSafe(|| service.call(method, context, payload)))?;
    CatchUnwind(future).await
}

/// Polls a service future, catching a panic.
struct CatchUnwind(ServiceFuture);

impl Future for CatchUnwind {
    type Output = Result<ServiceResponse, Box<dyn Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}
