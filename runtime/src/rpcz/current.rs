//! The span whose handler is running on this thread: calls made from it are its children,
//! and [`annotate`](super::annotate) writes into it. Brisk sets it while it polls a traced
//! handler; [`propagate`] carries it into a task the handler spawns.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use super::Span;
use crate::protocol::Protocol;
use crate::MethodDescriptor;

thread_local! {
    static CURRENT: Cell<Option<Arc<Span>>> = const { Cell::new(None) };
}

/// The span set on this thread until dropped, when the one before comes back.
pub(crate) struct Entered(Option<Arc<Span>>);

/// Makes `span` this thread's current span until the guard drops. (Each access is
/// `try_with`: while the thread's locals are being destroyed there is no current span, and no
/// panic.)
pub(crate) fn enter(span: &Arc<Span>) -> Entered {
    Entered(
        CURRENT
            .try_with(|current| current.replace(Some(Arc::clone(span))))
            .ok()
            .flatten(),
    )
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| current.set(previous));
    }
}

/// The span of a client's call, if it is traced: made from a traced handler (a child of the
/// current span), or rpcz is on and the call may start a trace.
pub(crate) fn client_span(
    method: &MethodDescriptor,
    protocol: &Protocol,
    log_id: i64,
) -> Option<Arc<Span>> {
    Span::client(current_span().as_deref(), method, protocol, log_id)
}

/// The span of the handler running on this thread, if it is traced.
pub fn current_span() -> Option<Arc<Span>> {
    CURRENT
        .try_with(|current| {
            let span = current.take();
            let copy = span.clone();
            current.set(span);
            copy
        })
        .ok()
        .flatten()
}

/// `future`, polled with `span` (if any) as the thread's current span.
pub(crate) fn within<F: Future + Unpin>(
    span: Option<Arc<Span>>,
    mut future: F,
) -> impl Future<Output = F::Output> {
    std::future::poll_fn(move |cx| {
        let _entered = span.as_ref().map(enter);
        std::pin::Pin::new(&mut future).poll(cx)
    })
}

/// `future`, run as part of the span current where `propagate` is called: the calls it makes
/// are children of that span. For a task a traced handler spawns (Brisk sets the span while
/// it polls the handler itself, not tasks it starts).
///
/// ```
/// # async fn handler() {
/// let work = brisk::rpcz::propagate(async { /* calls made here join the handler's trace */ });
/// tokio::spawn(work);
/// # }
/// ```
pub fn propagate<F>(future: F) -> impl Future<Output = F::Output> + Send
where
    F: Future + Send + 'static,
{
    let span = current_span();
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx| {
        let _entered = span.as_ref().map(enter);
        future.as_mut().poll(cx)
    })
}
