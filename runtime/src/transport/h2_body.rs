//! HTTP/2 bodies read from and written to `h2` directly, without hyper in between (the
//! h2:grpc client and the HTTP/2 server).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

/// A body read straight from `h2` (a client's response, a server's request): its DATA
/// frames, each one's flow-control window given back as it is read, then its trailers.
pub(crate) struct H2Body {
    recv: RecvStream,
    /// Bytes still to come, when the sender announced a `content-length`.
    remaining: Option<u64>,
    data_done: bool,
    finished: bool,
}

impl H2Body {
    pub(crate) fn new(recv: RecvStream) -> Self {
        H2Body {
            recv,
            remaining: None,
            data_done: false,
            finished: false,
        }
    }

    /// Reports `length` (a request's `content-length`, which h2 holds the sender to) as the
    /// body's size, less what has been read.
    pub(crate) fn with_content_length(mut self, length: Option<u64>) -> Self {
        self.remaining = length;
        self
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
                    if let Some(remaining) = &mut this.remaining {
                        *remaining = remaining.saturating_sub(data.len() as u64);
                    }
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

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            _ if self.finished => SizeHint::with_exact(0),
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

/// What a body has next for a [`BodySender`].
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A data frame; `true` if it ends the stream.
    Data(Bytes, bool),
    /// The trailers, which end the stream.
    Trailers(HeaderMap),
    /// The end of the stream, with nothing more to send.
    End,
    /// The body failed: reset the stream with this reason.
    Reset(Reason),
}

/// Sends a body into an HTTP/2 stream as flow control allows, as hyper does: the next frame is
/// taken from the body first and only then is send capacity reserved (one byte: a frame larger
/// than the window waits in h2's buffer, so a slow reader holds at most one frame queued, and
/// a body with nothing to send pins no connection window); a reset by the peer is watched for
/// throughout.
#[derive(Debug)]
pub(crate) struct BodySender {
    stream: SendStream<Bytes>,
    /// A data frame taken from the body, waiting for capacity.
    waiting: Option<(Bytes, bool)>,
}

impl BodySender {
    pub(crate) fn new(stream: SendStream<Bytes>) -> Self {
        BodySender {
            stream,
            waiting: None,
        }
    }

    /// Resets the stream with `reason`.
    pub(crate) fn reset(&mut self, reason: Reason) {
        self.stream.send_reset(reason);
    }

    /// Sends what `next` yields until the stream is finished: `Ready` once it has ended (the
    /// body's end sent, or the stream reset by either side, or its connection gone).
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        mut next: impl FnMut(&mut Context<'_>) -> Poll<Outgoing>,
    ) -> Poll<()> {
        loop {
            if self.stream.poll_reset(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some((data, end)) = self.waiting.take() {
                while self.stream.capacity() == 0 {
                    match self.stream.poll_capacity(cx) {
                        Poll::Pending => {
                            self.waiting = Some((data, end));
                            return Poll::Pending;
                        }
                        Poll::Ready(Some(Ok(0))) => {}
                        Poll::Ready(Some(Ok(_))) => break,
                        Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                    }
                }
                if self.stream.send_data(data, end).is_err() || end {
                    return Poll::Ready(());
                }
                continue;
            }
            match ready!(next(cx)) {
                Outgoing::Data(data, end) if data.is_empty() => {
                    if self.stream.send_data(data, end).is_err() || end {
                        return Poll::Ready(());
                    }
                }
                Outgoing::Data(data, end) => {
                    self.stream.reserve_capacity(1);
                    self.waiting = Some((data, end));
                }
                Outgoing::Trailers(trailers) => {
                    self.stream.reserve_capacity(0);
                    let _ = self.stream.send_trailers(trailers);
                    return Poll::Ready(());
                }
                Outgoing::End => {
                    let _ = self.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
                Outgoing::Reset(reason) => {
                    self.stream.send_reset(reason);
                    return Poll::Ready(());
                }
            }
        }
    }
}
