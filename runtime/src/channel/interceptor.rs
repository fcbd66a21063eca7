//! Client interceptors: code every call of a channel passes through, before it is sent (to add
//! metadata, or refuse it) and after it ended (to observe how it went).

use std::fmt;
use std::sync::Arc;

use crate::{Controller, MethodDescriptor, Status};

/// Runs around every call of a channel: unary calls, streaming calls (their opening), and the
/// redis and memcache calls made through it. Given to
/// [`ChannelBuilder::interceptor`](crate::ChannelBuilder::interceptor). A combo channel's
/// calls pass its own interceptors, not its sub-channels'.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use brisk::interceptor::ClientInterceptor;
/// use brisk::{Controller, MethodDescriptor, Status};
///
/// /// Tags every call with the tenant, and counts the failures.
/// #[derive(Default)]
/// struct Tenant {
///     failures: AtomicU64,
/// }
///
/// impl ClientInterceptor for Tenant {
///     fn before(&self, cntl: &mut Controller, _method: &MethodDescriptor) -> Result<(), Status> {
///         cntl.set_request_header("tenant", "blue");
///         Ok(())
///     }
///
///     fn after(&self, cntl: &Controller, _method: &MethodDescriptor) {
///         if cntl.failed() {
///             self.failures.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait ClientInterceptor: Send + Sync + 'static {
    /// Before the call is encoded and sent: may change its options and metadata on `cntl`
    /// (timeout, log id, request headers and user fields, attachment), or refuse it: the call
    /// then fails with the status returned, and nothing is sent.
    fn before(&self, cntl: &mut Controller, method: &MethodDescriptor) -> Result<(), Status> {
        let _ = (cntl, method);
        Ok(())
    }

    /// After the call ended, for each interceptor whose `before` let it go on (in reverse
    /// order): `cntl` holds its results (error, latency, server, retries). A streaming call
    /// ends here when its stream opened or failed to. A call whose future was dropped is not
    /// seen.
    fn after(&self, cntl: &Controller, method: &MethodDescriptor) {
        let _ = (cntl, method);
    }
}

/// A channel's interceptors, in the order they run `before` calls.
#[derive(Clone, Default)]
pub struct ClientInterceptors(Vec<Arc<dyn ClientInterceptor>>);

impl ClientInterceptors {
    /// Adds one, to run after those already in.
    pub fn push(&mut self, interceptor: Arc<dyn ClientInterceptor>) {
        self.0.push(interceptor);
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs `before` of each, in order, until one refuses: how many let the call go on, and
    /// the refusal if there was one.
    pub(crate) fn before(
        &self,
        cntl: &mut Controller,
        method: &MethodDescriptor,
    ) -> (usize, Result<(), Status>) {
        for (index, interceptor) in self.0.iter().enumerate() {
            if let Err(refused) = interceptor.before(cntl, method) {
                return (index, Err(refused));
            }
        }
        (self.0.len(), Ok(()))
    }

    /// Runs `after` of the first `accepted`, last first.
    pub(crate) fn after(&self, accepted: usize, cntl: &Controller, method: &MethodDescriptor) {
        for interceptor in self.0[..accepted.min(self.0.len())].iter().rev() {
            interceptor.after(cntl, method);
        }
    }
}

impl fmt::Debug for ClientInterceptors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientInterceptors({})", self.0.len())
    }
}
