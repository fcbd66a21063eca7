//! Calls answered in the order their requests were written, for protocols without a
//! correlation id (nshead, redis): a queue per connection, oldest call first.
//!
//! A request may draw several responses (a redis request of many commands gets a reply per
//! command, [`ClientCodec::responses_expected`](crate::protocol::ClientCodec::responses_expected)):
//! its entry counts them down and hands the call their messages joined. A connection's
//! handshake (redis's `AUTH`/`SELECT`) takes the first place in the queue, and its answer goes
//! back to the reader to judge, not to a call.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use bytes::BytesMut;
use tokio::sync::oneshot;

use super::pending::Reply;
use crate::protocol::Payload;
use crate::{errno, Status};

/// The queue of one connection's calls.
#[derive(Debug, Default)]
pub(crate) struct InOrderCalls {
    queue: Mutex<Queue>,
    /// The connection's failure, once it failed: later calls get it too (as brpc's socket
    /// hands its error to every write after `SetFailed`), so a call queued just after a
    /// refused handshake fails with the handshake's ERPCAUTH.
    failed: OnceLock<Status>,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Whether the connection's handshake went out (it goes once, before any call's request).
    handshake_sent: bool,
}

/// A request waiting for its responses.
#[derive(Debug)]
struct Entry {
    /// Where the answer goes: a call, or (`None`) back to the reader (the handshake's).
    to: Option<oneshot::Sender<Reply>>,
    /// Responses still to come.
    remaining: usize,
    /// The responses so far, for a request that draws several.
    joined: Option<Joined>,
}

/// Several responses becoming one answer: their messages in order, or the first error.
#[derive(Debug)]
struct Joined {
    message: BytesMut,
    error: Option<Status>,
}

/// What became of a response handed to [`InOrderCalls::complete`].
#[derive(Debug)]
pub(crate) enum Completion {
    /// It answered (or was one more part of the answer to) the oldest request.
    Taken,
    /// It completed the answer to the connection's handshake, which the reader judges.
    Handshake(Result<Payload, Status>),
    /// No request waits for it: the server sent more responses than it got requests.
    Unexpected,
    /// The responses to one request add up to more than `max_body_size` bytes.
    TooLarge,
}

impl InOrderCalls {
    /// Queues a call that expects `expected` responses (at least one is counted) and, under
    /// the same lock, sends its request (`send`), so calls wait in the order their requests
    /// leave. With `handshake` (how many responses answer it) and the handshake not yet sent,
    /// `send(true)` must send the handshake's frame before the request's, and the handshake
    /// takes the place before the call's. Fails if the connection has failed or `send` does.
    pub(crate) fn register(
        &self,
        expected: usize,
        handshake: Option<usize>,
        send: impl FnOnce(bool) -> Result<(), Status>,
    ) -> Result<InOrderCall, Status> {
        let (tx, rx) = oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = self.failed.get() {
            return Err(status.clone());
        }
        let with_handshake = handshake.filter(|_| !queue.handshake_sent);
        send(with_handshake.is_some())?;
        if let Some(responses) = with_handshake {
            queue.handshake_sent = true;
            queue.entries.push_back(Entry::new(None, responses));
        }
        queue.entries.push_back(Entry::new(Some(tx), expected));
        Ok(InOrderCall { rx })
    }

    /// Hands the next response to the oldest waiting request.
    pub(crate) fn complete(
        &self,
        response: Result<Payload, Status>,
        max_body_size: usize,
    ) -> Completion {
        let (to, answer) = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let Some(oldest) = queue.entries.front_mut() else {
                return Completion::Unexpected;
            };
            let mut response = Some(response);
            if oldest.remaining > 1 || oldest.joined.is_some() {
                let joined = oldest.joined.get_or_insert_with(|| Joined {
                    message: BytesMut::new(),
                    error: None,
                });
                match response.take().expect("not taken yet") {
                    Ok(payload) => {
                        if joined.message.len() + payload.message.len() > max_body_size {
                            return Completion::TooLarge;
                        }
                        joined.message.extend_from_slice(&payload.message);
                    }
                    Err(status) => {
                        joined.error.get_or_insert(status);
                    }
                }
                oldest.remaining -= 1;
                if oldest.remaining > 0 {
                    return Completion::Taken;
                }
            }
            let oldest = queue.entries.pop_front().expect("looked at above");
            let answer = match oldest.joined {
                None => response.expect("a lone response is not joined"),
                Some(Joined {
                    error: Some(status),
                    ..
                }) => Err(status),
                Some(Joined { message, .. }) => Ok(Payload {
                    message: message.freeze(),
                    ..Payload::default()
                }),
            };
            (oldest.to, answer)
        };
        match to {
            Some(tx) => {
                // A call that gave up kept its place; its answer is dropped.
                let _ = tx.send(Ok(answer));
                Completion::Taken
            }
            None => Completion::Handshake(answer),
        }
    }

    /// Fails every waiting call (and every later registration) with `status`; the first
    /// failure is the one later registrations get.
    pub(crate) fn fail_all(&self, status: &Status) {
        let drained: Vec<_> = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let _ = self.failed.set(status.clone());
            queue.entries.drain(..).collect()
        };
        for tx in drained.into_iter().filter_map(|entry| entry.to) {
            let _ = tx.send(Err(status.clone()));
        }
    }

    /// Whether the connection failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.get().is_some()
    }
}

impl Entry {
    fn new(to: Option<oneshot::Sender<Reply>>, expected: usize) -> Self {
        Entry {
            to,
            remaining: expected.max(1),
            joined: None,
        }
    }
}

/// A call waiting for its turn.
#[derive(Debug)]
pub(crate) struct InOrderCall {
    rx: oneshot::Receiver<Reply>,
}

impl InOrderCall {
    /// Waits for the response (or the connection's failure).
    pub(crate) async fn wait(self) -> Reply {
        self.rx
            .await
            .unwrap_or_else(|_| Err(Status::new(errno::EFAILEDSOCKET, "connection closed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MAX: usize = 1 << 20;

    fn response(tag: &'static [u8]) -> Result<Payload, Status> {
        Ok(Payload {
            message: Bytes::from_static(tag),
            ..Payload::default()
        })
    }

    fn message(reply: Reply) -> Bytes {
        reply.unwrap().unwrap().message
    }

    fn taken(completion: Completion) -> bool {
        matches!(completion, Completion::Taken)
    }

    #[tokio::test]
    async fn calls_are_answered_oldest_first_and_keep_their_place() {
        let calls = InOrderCalls::default();
        let first = calls.register(1, None, |_| Ok(())).unwrap();
        let second = calls.register(1, None, |_| Ok(())).unwrap();
        let third = calls.register(1, None, |_| Ok(())).unwrap();
        drop(second); // gave up, but its response still comes second
        assert!(taken(calls.complete(response(b"1"), MAX)));
        assert!(taken(calls.complete(response(b"2"), MAX)));
        assert!(taken(calls.complete(response(b"3"), MAX)));
        assert!(matches!(
            calls.complete(response(b"4"), MAX),
            Completion::Unexpected
        ));
        assert_eq!(message(first.wait().await), "1");
        assert_eq!(message(third.wait().await), "3");
    }

    #[tokio::test]
    async fn calls_fail_together_and_a_failed_send_queues_nothing() {
        let calls = InOrderCalls::default();
        let refused = calls.register(1, None, |_| {
            Err(Status::new(errno::EFAILEDSOCKET, "writer gone"))
        });
        assert!(refused.is_err());
        let waiting = calls.register(1, None, |_| Ok(())).unwrap();
        assert!(taken(
            calls.complete(response(b"for the waiting call"), MAX)
        ));
        assert_eq!(message(waiting.wait().await), "for the waiting call");
        let waiting = calls.register(1, None, |_| Ok(())).unwrap();
        calls.fail_all(&Status::new(errno::EEOF, "closed"));
        assert_eq!(waiting.wait().await.unwrap_err().code(), errno::EEOF);
        // A later call gets the connection's failure (a refused handshake's ERPCAUTH, say).
        let later = calls.register(1, None, |_| Ok(())).unwrap_err();
        assert_eq!((later.code(), later.message()), (errno::EEOF, "closed"));
        assert!(calls.has_failed());
    }

    #[tokio::test]
    async fn a_request_of_several_commands_gets_their_responses_joined() {
        let calls = InOrderCalls::default();
        let three = calls.register(3, None, |_| Ok(())).unwrap();
        let one = calls.register(1, None, |_| Ok(())).unwrap();
        for part in [&b"+OK\r\n"[..], b":1\r\n", b"$-1\r\n", b"+next\r\n"] {
            assert!(taken(calls.complete(
                Ok(Payload {
                    message: Bytes::copy_from_slice(part),
                    ..Payload::default()
                }),
                MAX
            )));
        }
        assert_eq!(message(three.wait().await), "+OK\r\n:1\r\n$-1\r\n");
        assert_eq!(message(one.wait().await), "+next\r\n");
    }

    #[tokio::test]
    async fn an_error_among_the_responses_answers_the_call_after_all_arrived() {
        let calls = InOrderCalls::default();
        let two = calls.register(2, None, |_| Ok(())).unwrap();
        let next = calls.register(1, None, |_| Ok(())).unwrap();
        calls.complete(Err(Status::new(errno::ERESPONSE, "bad")), MAX);
        calls.complete(response(b"second"), MAX);
        calls.complete(response(b"next"), MAX);
        assert_eq!(
            two.wait().await.unwrap().unwrap_err().code(),
            errno::ERESPONSE
        );
        assert_eq!(message(next.wait().await), "next");
    }

    #[tokio::test]
    async fn joined_responses_are_bounded() {
        let calls = InOrderCalls::default();
        let _two = calls.register(2, None, |_| Ok(())).unwrap();
        assert!(taken(calls.complete(response(b"12345"), 8)));
        assert!(matches!(
            calls.complete(response(b"6789"), 8),
            Completion::TooLarge
        ));
    }

    #[tokio::test]
    async fn the_handshake_goes_once_first_and_its_answer_comes_back() {
        let calls = InOrderCalls::default();
        let mut sent = Vec::new();
        let first = calls
            .register(1, Some(2), |with| {
                sent.push(with);
                Ok(())
            })
            .unwrap();
        let second = calls
            .register(1, Some(2), |with| {
                sent.push(with);
                Ok(())
            })
            .unwrap();
        assert_eq!(sent, [true, false], "the handshake is sent once");
        assert!(taken(calls.complete(response(b"+OK\r\n"), MAX)));
        match calls.complete(response(b"+OK\r\n"), MAX) {
            Completion::Handshake(Ok(payload)) => assert_eq!(payload.message, "+OK\r\n+OK\r\n"),
            other => panic!("expected the handshake's answer, got {other:?}"),
        }
        calls.complete(response(b"a"), MAX);
        calls.complete(response(b"b"), MAX);
        assert_eq!(message(first.wait().await), "a");
        assert_eq!(message(second.wait().await), "b");
    }
}
