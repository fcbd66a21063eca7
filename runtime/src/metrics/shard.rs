//! Cells spread over threads, so that recording from many threads at once touches no shared
//! cache line (bvar's per-thread agents): each thread writes the cell of its shard, a reader
//! combines them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

/// How many shards each sharded metric has: the machine's parallelism, rounded up to a power
/// of two, at most 16.
pub(crate) fn count() -> usize {
    static COUNT: LazyLock<usize> = LazyLock::new(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(1, 16)
            .next_power_of_two()
    });
    *COUNT
}

/// The shard the calling thread writes (threads take shards in turn).
#[inline]
pub(crate) fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|shard| *shard) & (count() - 1)
}

/// A value alone on its cache lines (two, for the adjacent-line prefetcher).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One `T` per shard.
pub(crate) fn cells<T: Default>() -> Box<[Padded<T>]> {
    (0..count()).map(|_| Padded::default()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn shards_are_a_power_of_two_and_threads_stay_within_them() {
        let count = super::count();
        assert!(count.is_power_of_two() && count <= 16);
        let seen: Vec<usize> = (0..8)
            .map(|_| std::thread::spawn(super::index).join().unwrap())
            .collect();
        assert!(seen.iter().all(|&i| i < count), "{seen:?}");
        assert_eq!(super::index(), super::index(), "a thread keeps its shard");
    }
}
