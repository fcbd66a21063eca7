//! Interceptors: code every request passes through, on servers ([`Interceptor`], brpc's, before
//! handlers run) and on channels ([`ClientInterceptor`], around every call). See
//! [`ServerBuilder::interceptor`](crate::ServerBuilder::interceptor) and
//! [`ChannelBuilder::interceptor`](crate::ChannelBuilder::interceptor).

pub use crate::channel::interceptor::{ClientInterceptor, ClientInterceptors};
pub use crate::server::interceptor::{Accept, AcceptFuture, Interceptor, MethodName};
