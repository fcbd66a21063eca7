//! New trace and span ids: a per-thread random prefix and a counter, as brpc makes them (no
//! lock, no shared cache line; 0 is never an id).

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    /// The thread's random bits and its counter.
    static GENERATOR: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A random 64-bit value from the standard library's per-process random keys, mixed with the
/// thread and the time: enough to keep ids of different threads and processes apart.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    let local = 0u8;
    hasher.write_usize(std::ptr::addr_of!(local) as usize);
    hasher.finish()
}

/// A new id: the thread's random high 48 bits and a 16-bit counter, the random part drawn
/// again when the counter wraps. Never 0.
pub(crate) fn next_id() -> u64 {
    GENERATOR.with(|generator| {
        let (mut random, mut sequence) = generator.get();
        if sequence == 0 || sequence > 0xFFFF {
            random = random_u64() & 0xFFFF_FFFF_FFFF_0000;
            sequence = 1;
        }
        generator.set((random, sequence + 1));
        random | sequence
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_zero_and_do_not_repeat_across_the_counter_wrap() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200_000 {
            let id = next_id();
            assert_ne!(id, 0);
            assert!(seen.insert(id), "{id:x} repeated");
        }
        let other = std::thread::spawn(next_id).join().unwrap();
        assert!(!seen.contains(&other));
    }
}
