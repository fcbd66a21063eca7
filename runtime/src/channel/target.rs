//! What a channel sends its calls to: one server, a cluster, or other channels combined.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::cluster::Cluster;
use super::endpoint::Endpoint;
use crate::naming::BoxFuture;
use crate::transport::client::{Answer, EncodedRequest};
use crate::{Controller, MethodDescriptor, Status};

/// What a channel sends its calls to.
#[derive(Debug)]
pub(crate) enum Target {
    /// One server.
    Single(Arc<Endpoint>),
    /// The servers of a naming service, through a load balancer.
    Cluster(Arc<Cluster>),
    /// Other channels, combined ([`crate::combo`]).
    Combo(Arc<dyn Combo>),
}

/// A channel made of other channels: how [`crate::combo`]'s channels plug into the call path.
pub(crate) trait Combo: Send + Sync + fmt::Debug + 'static {
    /// Runs one call. The caller applies the deadline and cancellation around it.
    fn call<'a>(
        &'a self,
        method: &'a MethodDescriptor,
        cntl: &'a mut Controller,
        request: &'a ErasedRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, Status>>;
}

/// A request as combo channels see it: encoded, and also typed (erased) so a call mapper can
/// look at it and replace it.
pub(crate) struct ErasedRequest<'a> {
    pub(crate) encoded: EncodedRequest,
    pub(crate) typed: &'a (dyn Any + Send + Sync),
    /// Encodes a replacement request of the call's request type.
    pub(crate) encode: fn(&(dyn Any + Send + Sync)) -> Result<Bytes, Status>,
    /// Decodes a (decompressed) response payload into the call's response type.
    pub(crate) decode: fn(Bytes) -> Result<Box<dyn Any + Send>, Status>,
}

/// A successful call's response: still encoded (with the connection's addresses), or already
/// decoded and merged by a combo channel.
pub(crate) enum Reply {
    Encoded(Answer),
    Decoded(Box<dyn Any + Send>),
}
