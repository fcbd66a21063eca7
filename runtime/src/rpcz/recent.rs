//! The spans rpcz keeps: the most recent ones, a bounded number (memory stays bounded
//! however long rpcz stays on).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{sampling, Span};

/// How many finished spans rpcz keeps by default.
pub const DEFAULT_CAPACITY: usize = 4096;

static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_CAPACITY);
static RECENT: Mutex<VecDeque<Arc<Span>>> = Mutex::new(VecDeque::new());

fn recent_spans() -> std::sync::MutexGuard<'static, VecDeque<Arc<Span>>> {
    RECENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends a span with its call's outcome (0, or its error code), marking `last`, and keeps it
/// if rpcz is on.
pub(crate) fn finish(span: Arc<Span>, error_code: i32, last: &'static str) {
    span.end(error_code, last);
    if sampling::is_enabled() {
        keep(span);
    }
}

/// A span that ends when dropped, if nothing ended it first: a call whose future is dropped
/// (its caller gave up, or a handler was cancelled at its deadline) still leaves its span,
/// ended `cancelled` with ECANCELED.
pub(crate) struct SpanGuard(Option<Arc<Span>>);

impl SpanGuard {
    /// Guards `span`, if there is one.
    pub(crate) fn new(span: Option<Arc<Span>>) -> Self {
        SpanGuard(span)
    }

    /// The span, if the call is traced.
    pub(crate) fn span(&self) -> Option<&Arc<Span>> {
        self.0.as_ref()
    }

    /// Ends the span (see [`finish`]).
    pub(crate) fn finish(mut self, error_code: i32, last: &'static str) {
        if let Some(span) = self.0.take() {
            finish(span, error_code, last);
        }
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(span) = self.0.take() {
            finish(span, crate::errno::ECANCELED, "cancelled");
        }
    }
}

/// Keeps a finished span, dropping the oldest beyond the capacity.
fn keep(span: Arc<Span>) {
    let capacity = CAPACITY.load(Ordering::Relaxed);
    let mut spans = recent_spans();
    while spans.len() >= capacity.max(1) {
        spans.pop_front();
    }
    spans.push_back(span);
}

/// The spans kept, newest first.
pub fn recent() -> Vec<Arc<Span>> {
    recent_spans().iter().rev().cloned().collect()
}

/// Sets how many finished spans rpcz keeps (at least 1): the oldest go first.
pub fn set_capacity(capacity: usize) {
    let capacity = capacity.max(1);
    CAPACITY.store(capacity, Ordering::Relaxed);
    let mut spans = recent_spans();
    while spans.len() > capacity {
        spans.pop_front();
    }
}

/// How many finished spans rpcz keeps.
pub fn capacity() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}
