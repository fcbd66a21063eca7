//! tower interop (feature `tower`): a hosted service's unary methods as a
//! [`tower_service::Service`], and [`tower_layer::Layer`]s around them, so existing tower
//! middleware (timeouts, concurrency limits, load shedding, your own) wraps Brisk handlers on
//! every protocol.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::interceptor::MethodName;
use super::{MessageSchema, Service, ServiceFuture, ServiceResponse, StreamingFuture};
use crate::streaming::{BytesStream, MethodKind};
use crate::{errno, ServerContext, Status};

/// A unary request as tower middleware sees it: the method, its context (peer, metadata,
/// deadline) and its encoded request message.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServiceRequest {
    /// The method's index in its service.
    pub method: usize,
    /// The method's names.
    pub name: MethodName<'static>,
    /// The request's context.
    pub context: ServerContext,
    /// The encoded request message.
    pub payload: Bytes,
}

/// A hosted [`Service`] as a [`tower_service::Service`]: the innermost service of a
/// [`ServerBuilder::layer`](crate::ServerBuilder::layer) stack. It is always ready, never
/// fails (a handler's error is in the [`ServiceResponse`]) and is cheap to clone.
#[derive(Clone)]
pub struct BriskService(Arc<dyn Service>);

impl BriskService {
    /// Wraps a service (a generated `XxxServer` adapter, say).
    pub fn new(service: impl Service) -> Self {
        BriskService(Arc::new(service))
    }

    pub(crate) fn from_arc(service: Arc<dyn Service>) -> Self {
        BriskService(service)
    }

    /// A request for the method named `method` (`Echo`): ENOMETHOD if the service has none.
    pub fn request(
        &self,
        method: &str,
        context: ServerContext,
        payload: Bytes,
    ) -> Result<ServiceRequest, Status> {
        let index = self
            .0
            .method_names()
            .iter()
            .position(|name| *name == method)
            .ok_or_else(|| {
                Status::new(
                    errno::ENOMETHOD,
                    format!("Fail to find method={}/{method}", self.0.full_name()),
                )
            })?;
        Ok(ServiceRequest {
            method: index,
            name: super::dispatch::method_name(&*self.0, index),
            context,
            payload,
        })
    }
}

impl std::fmt::Debug for BriskService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BriskService")
            .field(&self.0.full_name())
            .finish()
    }
}

impl tower_service::Service<ServiceRequest> for BriskService {
    type Response = ServiceResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ServiceRequest) -> Self::Future {
        let future = self
            .0
            .call(request.method, request.context, request.payload);
        Box::pin(async move { Ok(future.await) })
    }
}

/// Wraps every hosted service in a layer stack, as the server starts.
pub(crate) type Wrap = Box<dyn Fn(Arc<dyn Service>) -> Arc<dyn Service> + Send + Sync>;

/// The layer stack `layer` as a [`Wrap`].
pub(crate) fn wrap<L>(layer: L) -> Wrap
where
    L: tower_layer::Layer<BriskService> + Send + Sync + 'static,
    L::Service: tower_service::Service<ServiceRequest, Response = ServiceResponse>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower_service::Service<ServiceRequest>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>>,
    <L::Service as tower_service::Service<ServiceRequest>>::Future: Send + 'static,
{
    Box::new(move |inner: Arc<dyn Service>| {
        let layered = layer.layer(BriskService::from_arc(Arc::clone(&inner)));
        Arc::new(Layered { inner, layered }) as Arc<dyn Service>
    })
}

/// A hosted service whose unary calls go through a tower stack (streaming calls go to the
/// service directly).
struct Layered<S> {
    inner: Arc<dyn Service>,
    layered: S,
}

impl<S> Service for Layered<S>
where
    S: tower_service::Service<ServiceRequest, Response = ServiceResponse>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    fn full_name(&self) -> &'static str {
        self.inner.full_name()
    }

    fn method_names(&self) -> &'static [&'static str] {
        self.inner.method_names()
    }

    fn method_kinds(&self) -> &'static [MethodKind] {
        self.inner.method_kinds()
    }

    fn schema(&self) -> MessageSchema {
        self.inner.schema()
    }

    fn call(&self, method: usize, context: ServerContext, payload: Bytes) -> ServiceFuture {
        let name = super::dispatch::method_name(&*self.inner, method);
        let (remote, local) = (context.remote_side(), context.local_side());
        // A clone per call, as hyper and tonic do: state a layer shares between calls (a
        // concurrency limit's semaphore) lives behind its own `Arc`.
        let mut service = self.layered.clone();
        Box::pin(async move {
            let request = ServiceRequest {
                method,
                name,
                context,
                payload,
            };
            // The request's context went into the stack with it: a failure's answer gets a
            // fresh one (the same peer).
            let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
                ServiceResponse::new(ServerContext::new(remote, local), Err(to_status(e)))
            };
            let ready = std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into);
            if let Err(e) = ready {
                return failed(e);
            }
            service
                .call(request)
                .await
                .unwrap_or_else(|e| failed(e.into()))
        })
    }

    fn call_streaming(
        &self,
        method: usize,
        context: ServerContext,
        requests: BytesStream,
    ) -> StreamingFuture {
        self.inner.call_streaming(method, context, requests)
    }
}

/// A layer's error as the caller sees it: a [`Status`] as it is, anything else EINTERNAL with
/// its text (tower's timeout: `request timed out`).
fn to_status(error: Box<dyn std::error::Error + Send + Sync>) -> Status {
    match error.downcast::<Status>() {
        Ok(status) => *status,
        Err(other) => Status::new(errno::EINTERNAL, other.to_string()),
    }
}
