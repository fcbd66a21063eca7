//! HTTP/2 bodies read from and written to `h2` directly, without hyper in between (the
//! h2:grpc client and the HTTP/2 server).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use hyper::body::{Body, Frame};

/// A body read straight from `h2` (a client's response, a server's request): its DATA
/// frames, each one's flow-control window given back as it is read, then its trailers.
pub(crate) struct H2Body {
    recv: RecvStream,
    data_done: bool,
    finished: bool,
}

impl H2Body {
    pub(crate) fn new(recv: RecvStream) -> Self {
        H2Body {
            recv,
            data_done: false,
            finished: false,
        }
    }
}

impl fmt::Debug for H2Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Body")
            .field("data_done", &self.data_done)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.data_done = true,
            }
        }
        let trailers = ready!(this.recv.poll_trailers(cx));
        this.finished = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.recv.is_end_stream()
    }
}

/// Waits until `stream` may send: `Ready(true)` once it has some capacity, `Ready(false)` once
/// it is gone (reset by the peer, or its connection closed), which is watched for as long as
/// the caller then waits for its next frame.
///
/// Bodies are sent a frame at a time after this, as hyper does: a frame larger than the window
/// waits in h2's buffer, so a slow reader holds at most one frame queued.
pub(crate) fn poll_send_capacity(
    stream: &mut SendStream<Bytes>,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    loop {
        stream.reserve_capacity(1);
        if stream.capacity() > 0 {
            return Poll::Ready(stream.poll_reset(cx).is_pending());
        }
        match ready!(stream.poll_capacity(cx)) {
            Some(Ok(0)) => continue,
            Some(Ok(_)) => return Poll::Ready(true),
            Some(Err(_)) | None => return Poll::Ready(false),
        }
    }
}
