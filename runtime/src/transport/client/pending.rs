//! Calls waiting for their response on one connection, keyed by correlation id
//! ([`PendingCalls`]); protocols without one queue them instead
//! ([`InOrderCalls`](super::in_order::InOrderCalls)).
//!
//! The map is sharded so concurrent callers and the reader rarely meet on a lock; a call's
//! entry is removed by the response, by a connection failure, or by the call giving up (its
//! guard's `Drop`).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, OnceLock};

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
    /// The connection's failure, once it failed: later calls get it too, as brpc's socket
    /// hands its error code and text to every write after `SetFailed`.
    failed: OnceLock<Status>,
}

impl Default for PendingCalls {
    fn default() -> Self {
        PendingCalls {
            shards: std::array::from_fn(|_| Mutex::new(Waiters::default())),
            failed: OnceLock::new(),
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
        // Checked after inserting: `fail_all` records the failure before draining, so either
        // it sees our entry or we see the failure.
        if let Some(status) = self.failed.get() {
            return Err(status.clone());
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

    /// Fails every waiting call (and every later registration) with `status`; the first
    /// failure is the one later registrations get.
    pub(crate) fn fail_all(&self, status: &Status) {
        let _ = self.failed.set(status.clone());
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
        self.failed.get().is_some()
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
        // A later call gets the connection's failure, not a generic one.
        assert_eq!(calls.register(8).unwrap_err().message(), "reset");
        calls.fail_all(&Status::new(errno::EEOF, "closed"));
        assert_eq!(calls.register(9).unwrap_err().message(), "reset");
        assert_eq!(calls.len(), 0);
    }
}
