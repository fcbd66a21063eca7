//! Which tokio runtime runs a channel's connections.
//!
//! A channel created inside a multi-threaded tokio runtime uses that runtime. One created
//! elsewhere (no runtime, or a current-thread runtime, whose driver only runs while its thread
//! polls it) uses Brisk's own small background runtime, so blocking clients and current-thread
//! users never stall the connection they share.

use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// The runtime that should run connection I/O for a channel created here and now.
pub(crate) fn io_handle() -> Handle {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => handle,
        _ => background().handle().clone(),
    }
}

/// Brisk's background runtime (started on first use, lives for the process).
pub(crate) fn background() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("brisk-io")
            .enable_all()
            .build()
            .expect("failed to start Brisk's background tokio runtime")
    })
}

/// Runs `future` to completion on the current thread, parking it between polls.
///
/// `runtime`'s context is entered so timers and spawns inside the future work; the runtime's
/// own workers drive the I/O. Unlike `Handle::block_on` this is allowed on any thread, including
/// `spawn_blocking` threads and async worker threads (where it blocks the task, as any blocking
/// call would: prefer the async client there).
pub(crate) fn block_on<F: std::future::Future>(runtime: &Handle, future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

    struct Unparker(Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let park_until_done = move || {
        let _entered = runtime.enter();
        let waker = Waker::from(Arc::new(Unparker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            thread::park();
        }
    };
    match Handle::try_current() {
        // On a multi-threaded runtime, `block_in_place` hands this worker's other tasks to
        // another thread first (and just runs the closure on non-worker threads), so blocking
        // here cannot starve the connection's own I/O even on a one-worker runtime.
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(park_until_done)
        }
        _ => park_until_done(),
    }
}
