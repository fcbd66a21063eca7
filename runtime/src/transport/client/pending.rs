//! Calls waiting for their response on one connection: keyed by correlation id
//! ([`PendingCalls`]), or queued in the order their requests were written ([`InOrderCalls`]).
//!
//! The map is sharded so concurrent callers and the reader rarely meet on a lock; a call's
//! entry is removed by the response, by a connection failure, or by the call giving up (its
//! guard's `Drop`).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::protocol::Payload;
use crate::transport::id_hasher::IdHasher;
use crate::{errno, Status};

const SHARDS: usize = 16;

/// What a waiting call gets: the server's response (the message, or the error it answered
/// with), or the connection's failure.
pub(crate) type Reply = Result<Result<Payload, Status>, Status>;
type Waiters = HashMap<u64, oneshot::Sender<Reply>, BuildHasherDefault<IdHasher>>;

/// The calls in flight on one connection.
#[derive(Debug)]
pub(crate) struct PendingCalls {
    shards: [Mutex<Waiters>; SHARDS],
    failed: AtomicBool,
}

impl Default for PendingCalls {
    fn default() -> Self {
        PendingCalls {
            shards: std::array::from_fn(|_| Mutex::new(Waiters::default())),
            failed: AtomicBool::new(false),
        }
    }
}

impl PendingCalls {
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, Waiters> {
        self.shards[(id as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Registers call `id`; fails if the connection has already failed.
    pub(crate) fn register(&self, id: u64) -> Result<PendingCall<'_>, Status> {
        let (tx, rx) = oneshot::channel();
        self.shard(id).insert(id, tx);
        let call = PendingCall {
            calls: self,
            id,
            rx,
            armed: true,
        };
        // Checked after inserting: `fail_all` sets the flag before draining, so either it sees
        // our entry or we see the flag.
        if self.failed.load(Ordering::SeqCst) {
            return Err(Status::new(errno::EFAILEDSOCKET, "connection is broken"));
        }
        Ok(call)
    }

    /// Hands a response to its call. Returns false for an unknown id (the caller gave up).
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        match self.shard(id).remove(&id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Fails every waiting call (and every later registration) with `status`.
    pub(crate) fn fail_all(&self, status: &Status) {
        self.failed.store(true, Ordering::SeqCst);
        for shard in &self.shards {
            let drained: Vec<_> = shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (_, tx) in drained {
                let _ = tx.send(Err(status.clone()));
            }
        }
    }

    /// Whether the connection failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// One registered call; removes its entry when dropped before its response arrived.
#[derive(Debug)]
pub(crate) struct PendingCall<'a> {
    calls: &'a PendingCalls,
    id: u64,
    rx: oneshot::Receiver<Reply>,
    armed: bool,
}

impl PendingCall<'_> {
    /// Waits for the response (or the connection's failure).
    pub(crate) async fn wait(mut self) -> Reply {
        let reply = (&mut self.rx).await;
        self.armed = false;
        reply.unwrap_or_else(|_| Err(Status::new(errno::EFAILEDSOCKET, "connection closed")))
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.calls.shard(self.id).remove(&self.id);
        }
    }
}

/// Calls answered in the order their requests were written (protocols without a correlation
/// id). A call that gives up keeps its place: its response still comes, and is dropped.
#[derive(Debug, Default)]
pub(crate) struct InOrderCalls {
    waiting: Mutex<VecDeque<oneshot::Sender<Reply>>>,
    failed: AtomicBool,
}

impl InOrderCalls {
    /// Queues a call and, under the same lock, its request (`send`), so calls wait in the order
    /// their requests leave. Fails if the connection has failed or `send` does.
    pub(crate) fn register(
        &self,
        send: impl FnOnce() -> Result<(), Status>,
    ) -> Result<InOrderCall, Status> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if self.failed.load(Ordering::SeqCst) {
            return Err(Status::new(errno::EFAILEDSOCKET, "connection is broken"));
        }
        send()?;
        waiting.push_back(tx);
        Ok(InOrderCall { rx })
    }

    /// Hands a response to the oldest waiting call; false if no call waits (the server sent
    /// more responses than it got requests).
    pub(crate) fn complete_next(&self, reply: Reply) -> bool {
        let next = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        match next {
            Some(tx) => {
                let _ = tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Fails every waiting call (and every later registration) with `status`.
    pub(crate) fn fail_all(&self, status: &Status) {
        let drained: Vec<_> = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            self.failed.store(true, Ordering::SeqCst);
            waiting.drain(..).collect()
        };
        for tx in drained {
            let _ = tx.send(Err(status.clone()));
        }
    }

    /// Whether the connection failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
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

    fn reply(tag: &'static [u8]) -> Reply {
        Ok(Ok(Payload {
            message: Bytes::from_static(tag),
            ..Payload::default()
        }))
    }

    fn message(reply: Reply) -> Bytes {
        reply.unwrap().unwrap().message
    }

    #[tokio::test]
    async fn response_reaches_its_call_and_dropped_calls_leave_nothing() {
        let calls = PendingCalls::default();
        let a = calls.register(1).unwrap();
        let b = calls.register(2).unwrap();
        assert!(calls.complete(2, reply(b"2")));
        assert_eq!(message(b.wait().await), "2");
        drop(a);
        assert_eq!(calls.len(), 0);
        assert!(!calls.complete(1, reply(b"1")));
    }

    #[tokio::test]
    async fn failure_reaches_waiting_and_later_calls() {
        let calls = PendingCalls::default();
        let a = calls.register(7).unwrap();
        calls.fail_all(&Status::new(errno::EFAILEDSOCKET, "reset"));
        assert_eq!(a.wait().await.unwrap_err().code(), errno::EFAILEDSOCKET);
        assert!(calls.register(8).is_err());
        assert_eq!(calls.len(), 0);
    }

    #[tokio::test]
    async fn in_order_calls_are_answered_oldest_first_and_keep_their_place() {
        let calls = InOrderCalls::default();
        let first = calls.register(|| Ok(())).unwrap();
        let second = calls.register(|| Ok(())).unwrap();
        let third = calls.register(|| Ok(())).unwrap();
        drop(second); // gave up, but its response still comes second
        assert!(calls.complete_next(reply(b"1")));
        assert!(calls.complete_next(reply(b"2")));
        assert!(calls.complete_next(reply(b"3")));
        assert!(!calls.complete_next(reply(b"4")), "nobody waits");
        assert_eq!(message(first.wait().await), "1");
        assert_eq!(message(third.wait().await), "3");
    }

    #[tokio::test]
    async fn in_order_calls_fail_together_and_a_failed_send_queues_nothing() {
        let calls = InOrderCalls::default();
        let refused = calls.register(|| Err(Status::new(errno::EFAILEDSOCKET, "writer gone")));
        assert!(refused.is_err());
        let waiting = calls.register(|| Ok(())).unwrap();
        assert!(calls.complete_next(reply(b"for the waiting call")));
        assert_eq!(message(waiting.wait().await), "for the waiting call");
        let waiting = calls.register(|| Ok(())).unwrap();
        calls.fail_all(&Status::new(errno::EEOF, "closed"));
        assert_eq!(waiting.wait().await.unwrap_err().code(), errno::EEOF);
        assert!(calls.register(|| Ok(())).is_err());
        assert!(calls.has_failed());
    }
}
