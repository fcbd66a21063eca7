//! What every protocol does with a request once it is read: find its method, and run the
//! handler without letting a panic take anything else down.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::interceptor::{intercept, wait, Interceptors, MethodName};
use super::registry::Registry;
use super::state::Shared;
use super::{ServerContext, Service, ServiceFuture, ServiceResponse};
pub(crate) use crate::error::panic_message;
use crate::protocol::MethodRef;
use crate::rpcz::{self, Span};
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

/// A unary handler whose future was made (or whose making panicked), not yet run. Making it
/// takes the request's context; what is left is small, so the task that runs it moves little.
pub(crate) struct StartedHandler {
    /// The call's span, entered while its handler is polled.
    span: tracing::Span,
    /// Its rpcz span, when traced: the thread's current span while its handler is polled.
    rpcz_span: Option<Arc<Span>>,
    stage: Stage,
    deadline: Option<Instant>,
    timeout_ms: Option<i32>,
    remote: SocketAddr,
}

/// Where a handler is.
enum Stage {
    /// Its future, to poll.
    Running(ServiceFuture),
    /// Making its future panicked.
    Panicked(Box<dyn Any + Send>),
    /// It answered, or was cancelled at its deadline.
    Done,
}

/// Makes a unary handler's future for a request, once the server's `interceptors` accepted
/// it (catching a panic while making it). An interceptor that decides later is awaited as
/// part of the handler. A `blocking` handler is run on tokio's blocking pool, so that it may
/// block its thread without stalling the requests on its connection (brpc's
/// `usercode_in_pthread`). A traced call's rpcz span (`rpcz_span`) is the thread's current span
/// while the handler runs, and marks its start and end.
pub(crate) fn start_handler(
    service: &Arc<dyn Service>,
    method: usize,
    context: ServerContext,
    payload: Bytes,
    blocking: bool,
    interceptors: &Interceptors,
    rpcz_span: Option<Arc<Span>>,
) -> StartedHandler {
    let deadline = context.deadline;
    let timeout_ms = context.timeout_ms;
    let remote = context.remote_side;
    // The handler runs inside a span of its own, so users' subscribers see each call with its
    // method, peer and log id (debug level, as tower-http's: free when nothing listens there).
    let span = tracing::debug_span!(
        target: "brisk::server",
        "rpc",
        service = service.full_name(),
        method = service.method_names().get(method).copied().unwrap_or_default(),
        peer = %remote,
        log_id = context.log_id,
        trace_id = tracing::field::Empty,
    );
    if let Some(traced) = &rpcz_span {
        if !span.is_disabled() {
            span.record("trace_id", traced.ids().trace_id_hex());
        }
        traced.annotate("handler start");
    }
    let entered = span.enter();
    let current = rpcz_span.as_ref().map(rpcz::enter);
    let made = std::panic::catch_unwind(AssertUnwindSafe(|| -> ServiceFuture {
        if interceptors.is_empty() {
            return service.call(method, context, payload);
        }
        let mut context = context;
        let name = method_name(&**service, method);
        let waiting = match intercept(interceptors, 0, &mut context, name) {
            Ok(None) => return service.call(method, context, payload),
            Ok(Some(waiting)) => waiting,
            // Answered with the context, as a refusal after a wait is: headers the
            // interceptor set go out with it.
            Err(refused) => {
                return Box::pin(std::future::ready(ServiceResponse::new(
                    context,
                    Err(refused),
                )))
            }
        };
        let (service, interceptors) = (Arc::clone(service), Arc::clone(interceptors));
        Box::pin(async move {
            match wait(&interceptors, waiting, &mut context, name).await {
                Ok(()) => service.call(method, context, payload).await,
                Err(refused) => ServiceResponse::new(context, Err(refused)),
            }
        })
    }));
    drop(current);
    drop(entered);
    StartedHandler {
        span,
        stage: match made {
            Ok(future) if blocking => Stage::Running(on_blocking_pool(future, rpcz_span.clone())),
            Ok(future) => Stage::Running(future),
            Err(panic) => Stage::Panicked(panic),
        },
        deadline,
        timeout_ms,
        remote,
        rpcz_span,
    }
}

impl StartedHandler {
    /// Runs the handler: a panic becomes EINTERNAL (and is logged), and a handler still running
    /// at the caller's deadline ([`ServerContext::deadline`]) is cancelled — its future
    /// dropped — and answered with ERPCTIMEDOUT. `shared` counts handlers cancelled
    /// unfinished, at the deadline or by being dropped (the caller went away). The deadline's
    /// timer is armed only if the handler waits.
    pub(crate) fn run(self, shared: &Shared) -> RunningHandler<'_> {
        RunningHandler {
            started: self,
            timer: None,
            shared,
        }
    }
}

/// [`StartedHandler::run`]'s future.
pub(crate) struct RunningHandler<'s> {
    started: StartedHandler,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: &'s Shared,
}

impl Future for RunningHandler<'_> {
    type Output = Result<ServiceResponse, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let remote = this.started.remote;
        let panicked = |panic: &Box<dyn Any + Send>| {
            let what = panic_message(panic);
            tracing::error!(%remote, "handler panicked: {what}");
            Status::internal(format!("handler panicked: {what}"))
        };
        let future = match &mut this.started.stage {
            Stage::Running(future) => future,
            Stage::Panicked(panic) => {
                let status = panicked(panic);
                this.started.stage = Stage::Done;
                return Poll::Ready(Err(status));
            }
            Stage::Done => {
                return Poll::Ready(Err(Status::internal("a handler polled after it ended")))
            }
        };
        let polled = {
            let _entered = this.started.span.enter();
            let _current = this.started.rpcz_span.as_ref().map(rpcz::enter);
            std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
        };
        let ready = match polled {
            Ok(Poll::Pending) => None,
            Ok(Poll::Ready(response)) => Some(Ok(response)),
            Err(panic) => Some(Err(panicked(&panic))),
        };
        if let Some(ready) = ready {
            this.started.stage = Stage::Done;
            if let Some(traced) = &this.started.rpcz_span {
                traced.annotate("handler end");
            }
            return Poll::Ready(ready);
        }
        let Some(deadline) = this.started.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        if timer.as_mut().poll(cx).is_ready() {
            this.shared.count_cancelled();
            // Dropping the handler's future now cancels it.
            this.started.stage = Stage::Done;
            return Poll::Ready(Err(past_deadline(this.started.timeout_ms)));
        }
        Poll::Pending
    }
}

impl Drop for RunningHandler<'_> {
    fn drop(&mut self) {
        // Dropped unfinished: the caller went away (at its deadline, typically) first.
        if matches!(self.started.stage, Stage::Running(_)) {
            self.shared.count_cancelled();
        }
    }
}

/// Counts a handler (or a stream) as cancelled when dropped before
/// [`finish`](CancelCount::finish): the server cancelled it at its deadline, or its caller
/// went away first.
pub(crate) struct CancelCount<'s> {
    shared: &'s Shared,
    finished: bool,
}

impl<'s> CancelCount<'s> {
    /// Watches a handler of `shared`'s.
    pub(crate) fn new(shared: &'s Shared) -> Self {
        CancelCount {
            shared,
            finished: false,
        }
    }

    /// The handler got to its end: nothing to count.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for CancelCount<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.count_cancelled();
        }
    }
}

/// Runs a unary handler for a request: [`start_handler`], then [`StartedHandler::run`].
pub(crate) async fn run_handler(
    shared: &Shared,
    service: &Arc<dyn Service>,
    method: usize,
    context: ServerContext,
    payload: Bytes,
    blocking: bool,
    rpcz_span: Option<Arc<Span>>,
) -> Result<ServiceResponse, Status> {
    start_handler(
        service,
        method,
        context,
        payload,
        blocking,
        &shared.interceptors,
        rpcz_span,
    )
    .run(shared)
    .await
}

/// The name interceptors see for `service`'s method `method`.
pub(crate) fn method_name(service: &dyn Service, method: usize) -> MethodName<'static> {
    let name = service
        .method_names()
        .get(method)
        .copied()
        .unwrap_or_default();
    MethodName::new(service.full_name(), name)
}

/// `future`, run to its end on a thread of tokio's blocking pool. A panic there is raised
/// again where the result is awaited (the handler runner answers it with EINTERNAL). Dropping
/// the result (at the caller's deadline) does not stop the thread: a blocked handler cannot be
/// cut short. A traced call's span (`rpcz_span`) is the blocking thread's current span.
fn on_blocking_pool(future: ServiceFuture, rpcz_span: Option<Arc<Span>>) -> ServiceFuture {
    let runtime = tokio::runtime::Handle::current();
    let running = tokio::task::spawn_blocking(move || {
        let _current = rpcz_span.as_ref().map(rpcz::enter);
        runtime.block_on(future)
    });
    Box::pin(async move {
        match running.await {
            Ok(response) => response,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down. Answered as a panic would be.
            Err(e) => std::panic::panic_any(format!("the blocking handler was lost: {e}")),
        }
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
