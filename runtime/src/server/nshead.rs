//! Serving nshead: [`NsheadService`] for raw nshead bodies, as brpc's
//! `ServerOptions.nshead_service`, and [`NsheadPbAdaptor`] to serve a protobuf service's methods
//! to nshead and nova_pbrpc clients (brpc's `NsheadPbServiceAdaptor` and
//! `NovaServiceAdaptor`). public_pbrpc needs neither: every server answers it with its
//! services.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::{ServerContext, Service, ServiceFuture, ServiceResponse};
use crate::compress::{self, CompressType};
use crate::protocol::nshead::{NsheadHead, HEADER_LEN, MAGIC, NSHEAD_SERVICE};
use crate::protocol::DEFAULT_MAX_BODY_SIZE;
use crate::{errno, Error, Status};

/// An nshead request: its header and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsheadMessage {
    /// The header as the client sent it.
    pub head: NsheadHead,
    /// The body, opaque to nshead.
    pub body: Bytes,
}

/// Handles the nshead requests a server receives (all but public_pbrpc's), as brpc's
/// `NsheadService`. The reply's header is the request's, echoed with `body_len` set, as brpc's
/// server sends it; the handler returns the reply's body. nshead cannot carry an error: a
/// handler's error closes the connection (the client sees it fail), as brpc's adaptors do.
///
/// ```
/// use brisk::{NsheadMessage, NsheadService, ServerContext, Status};
///
/// /// Answers every request with its own body, as brpc's `nshead_extension_c++` server.
/// struct Echo;
///
/// impl NsheadService for Echo {
///     async fn process(&self, _cntl: &mut ServerContext, request: NsheadMessage)
///         -> Result<bytes::Bytes, Status> {
///         Ok(request.body)
///     }
/// }
/// # async fn demo() -> Result<(), brisk::Status> {
/// let server = brisk::Server::builder().nshead_service(Echo).start("127.0.0.1:0").await?;
/// # Ok(()) }
/// ```
pub trait NsheadService: Send + Sync + 'static {
    /// The body of the reply to `request`.
    fn process(
        &self,
        cntl: &mut ServerContext,
        request: NsheadMessage,
    ) -> impl Future<Output = Result<Bytes, Status>> + Send;
}

/// A [`NsheadService`] hosted as the server's [`NSHEAD_SERVICE`]: the nshead codec makes the
/// whole message (header and body) the request.
pub(crate) struct NsheadServer<S>(pub(crate) Arc<S>);

impl<S: NsheadService> Service for NsheadServer<S> {
    fn full_name(&self) -> &'static str {
        NSHEAD_SERVICE
    }

    fn method_names(&self) -> &'static [&'static str] {
        &["process"]
    }

    fn call(&self, method: usize, mut cntl: ServerContext, request: Bytes) -> ServiceFuture {
        let service = Arc::clone(&self.0);
        Box::pin(async move {
            let head = NsheadHead::parse(&request).filter(|head| head.magic_num == MAGIC);
            let message = match (method, head) {
                (0, Some(head)) => NsheadMessage {
                    head,
                    body: request.slice(HEADER_LEN..),
                },
                (0, None) => {
                    let status = Status::new(
                        errno::EREQUEST,
                        format!("{NSHEAD_SERVICE} takes a whole nshead message: header and body"),
                    );
                    return ServiceResponse::new(cntl, Err(status));
                }
                _ => {
                    let status =
                        Status::new(errno::ENOMETHOD, format!("no method with index {method}"));
                    return ServiceResponse::new(cntl, Err(status));
                }
            };
            let result = service.process(&mut cntl, message).await;
            ServiceResponse::new(cntl, result)
        })
    }
}

/// Which method of its service an [`NsheadPbAdaptor`] calls.
#[derive(Clone, Copy, Debug)]
enum MethodChoice {
    /// Always this one.
    Fixed(usize),
    /// The one `reserved` numbers, snappy as `version` bit 0 says: nova_pbrpc.
    Nova,
}

/// Serves a protobuf service's methods to nshead clients, as brpc's `NsheadPbServiceAdaptor`:
/// the nshead body is the serialized request, the reply's body the serialized response.
/// [`new`](NsheadPbAdaptor::new) calls one method for every request (what a channel of
/// protocol `nshead` sends); [`nova`](NsheadPbAdaptor::nova) speaks nova_pbrpc.
///
/// ```
/// # use brisk::{NsheadPbAdaptor, Service};
/// # fn demo(echo: impl Service + Clone) -> Result<(), brisk::Error> {
/// let builder = brisk::Server::builder()
///     .add_service(echo.clone())
///     .nshead_service(NsheadPbAdaptor::nova(echo));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NsheadPbAdaptor {
    service: Arc<dyn Service>,
    method: MethodChoice,
}

impl std::fmt::Debug for NsheadPbAdaptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsheadPbAdaptor")
            .field("service", &self.service.full_name())
            .field("method", &self.method)
            .finish()
    }
}

impl NsheadPbAdaptor {
    /// Serves `service`'s method `method` (its name in the `.proto`) to every nshead request.
    /// EINVAL if the service has no such method.
    pub fn new(service: impl Service, method: &str) -> Result<Self, Error> {
        let index = service
            .method_names()
            .iter()
            .position(|name| *name == method)
            .ok_or_else(|| {
                Error::invalid(format!("{} has no method `{method}`", service.full_name()))
            })?;
        Ok(NsheadPbAdaptor {
            service: Arc::new(service),
            method: MethodChoice::Fixed(index),
        })
    }

    /// Serves `service` over nova_pbrpc, as brpc's `NovaServiceAdaptor`: the method is the
    /// one the header's `reserved` numbers, and bit 0 of its `version` says the body is
    /// snappy-compressed (the reply is compressed alike, so the echoed header tells the
    /// truth). A method the service lacks closes the connection, as brpc's does.
    pub fn nova(service: impl Service) -> Self {
        NsheadPbAdaptor {
            service: Arc::new(service),
            method: MethodChoice::Nova,
        }
    }
}

impl NsheadService for NsheadPbAdaptor {
    async fn process(
        &self,
        cntl: &mut ServerContext,
        request: NsheadMessage,
    ) -> Result<Bytes, Status> {
        let (index, snappy) = match self.method {
            MethodChoice::Fixed(index) => (index, false),
            MethodChoice::Nova => (
                request.head.reserved as usize,
                request.head.version & 1 != 0,
            ),
        };
        let service = self.service.full_name();
        let Some(method) = self.service.method_names().get(index) else {
            return Err(Status::new(
                errno::ENOMETHOD,
                format!("Fail to find method={index} of service={service}"),
            ));
        };
        let body = if snappy {
            compress::decompress(CompressType::Snappy, request.body, DEFAULT_MAX_BODY_SIZE)
                .map_err(|e| {
                    Status::new(
                        errno::EREQUEST,
                        format!("Fail to decompress request of {service}.{method}: {e}"),
                    )
                })?
        } else {
            request.body
        };
        let response = self.service.call(index, cntl.clone(), body).await;
        *cntl = response.context;
        // nshead cannot say how a body is compressed (nova only says snappy, below).
        cntl.response_compress_type = CompressType::None;
        let message = response.result?;
        if !snappy {
            return Ok(message);
        }
        compress::compress_to_bytes(CompressType::Snappy, &message)
            .map_err(|e| Status::internal(format!("Fail to compress response: {e}")))
    }
}
