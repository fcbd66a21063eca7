//! Streaming calls (gRPC's server-, client- and bidirectional streaming methods).

use futures_core::Stream;

use super::{Channel, MethodDescriptor};
use crate::codec::MessageCodec;
use crate::{errno, Controller, Status, Streaming};

impl Channel {
    /// Calls a streaming method: sends `requests` as they come and returns the responses as
    /// they arrive. Generated stubs call it for all three streaming kinds (a server-streaming
    /// call sends one request; a client-streaming call reads one response). Only `h2:grpc`
    /// channels stream; others answer EREQUEST.
    pub async fn streaming<C, Req, Resp, S>(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        requests: S,
    ) -> Result<Streaming<Resp>, Status>
    where
        C: MessageCodec<Req> + MessageCodec<Resp>,
        S: Stream<Item = Req> + Send + 'static,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let _ = (method, cntl, requests);
        Err(Status::new(
            errno::EREQUEST,
            "streaming calls are not implemented yet",
        ))
    }
}
