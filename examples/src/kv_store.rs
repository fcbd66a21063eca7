//! A small in-memory key-value store that speaks redis through Brisk's
//! [`RedisService`]: what the `redis_server` example hosts, for `redis-cli` and
//! `redis-benchmark`. Commands: `PING`, `AUTH`, `GET`, `SET` (with `EX`/`PX`), `DEL`, `INCR`,
//! `MGET`, `EXPIRE`, `TTL`, and the `CONFIG GET` that `redis-benchmark` asks first.
//!
//! Keys live in 32 shards, each behind its own lock, as brpc's example server keeps them.
//! Expiry reads an injectable clock ([`KvStore::with_clock`]), so tests need not sleep.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brisk::redis::{RedisContext, RedisReply, RedisService};
use bytes::Bytes;

const SHARDS: usize = 32;

/// The clock expiry reads.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct Entry {
    value: Bytes,
    expires: Option<Instant>,
}

/// The store: keys, their values and their expiry times.
pub struct KvStore {
    shards: Vec<Mutex<HashMap<Bytes, Entry>>>,
    hasher: RandomState,
    clock: Clock,
}

/// A command of the store, given its arguments.
type Command = Box<dyn Fn(&[Bytes]) -> RedisReply + Send + Sync>;

/// Set on a connection once `AUTH` succeeded.
struct Authenticated;

impl KvStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        KvStore::with_clock(Arc::new(Instant::now))
    }

    /// A store whose expiry reads `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        KvStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Bytes, Entry>> {
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on `key`'s live entry (an expired one is removed first).
    fn with_entry<T>(&self, key: &Bytes, f: impl FnOnce(&mut HashMap<Bytes, Entry>) -> T) -> T {
        let now = (self.clock)();
        let mut shard = self.shard(key);
        if shard
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|at| at <= now))
        {
            shard.remove(key);
        }
        f(&mut shard)
    }

    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.with_entry(key, |shard| shard.get(key).map(|e| e.value.clone()))
    }

    /// Stores `value`; false (nothing stored) if `ttl` ends past what the clock can count.
    fn set(&self, key: Bytes, value: Bytes, ttl: Option<Duration>) -> bool {
        let expires = match ttl {
            None => None,
            Some(ttl) => match (self.clock)().checked_add(ttl) {
                Some(at) => Some(at),
                None => return false,
            },
        };
        self.shard(&key).insert(key, Entry { value, expires });
        true
    }

    fn del(&self, key: &Bytes) -> bool {
        self.with_entry(key, |shard| shard.remove(key).is_some())
    }

    fn incr(&self, key: &Bytes) -> RedisReply {
        self.with_entry(key, |shard| {
            let entry = shard.entry(key.clone()).or_insert_with(|| Entry {
                value: Bytes::from_static(b"0"),
                expires: None,
            });
            let Some(n) = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            else {
                return RedisReply::error("ERR value is not an integer or out of range");
            };
            let Some(next) = n.checked_add(1) else {
                return RedisReply::error("ERR increment or decrement would overflow");
            };
            entry.value = Bytes::from(next.to_string());
            RedisReply::Integer(next)
        })
    }

    /// Sets `key`'s expiry: `None` if `ttl` ends past what the clock can count, else whether
    /// the key exists.
    fn expire(&self, key: &Bytes, ttl: Duration) -> Option<bool> {
        let at = (self.clock)().checked_add(ttl)?;
        Some(self.with_entry(key, |shard| match shard.get_mut(key) {
            Some(entry) => {
                entry.expires = Some(at);
                true
            }
            None => false,
        }))
    }

    /// Seconds left, rounded as redis rounds them; -1 without expiry, -2 without the key.
    fn ttl(&self, key: &Bytes) -> i64 {
        let now = (self.clock)();
        self.with_entry(key, |shard| match shard.get(key) {
            None => -2,
            Some(Entry { expires: None, .. }) => -1,
            Some(Entry {
                expires: Some(at), ..
            }) => (at.duration_since(now).as_millis() as i64 + 500) / 1000,
        })
    }
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore").field("shards", &SHARDS).finish()
    }
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::new()
    }
}

fn wrong_arity(name: &str) -> RedisReply {
    RedisReply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn integer_arg(arg: &Bytes) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// `SET key value [EX seconds | PX milliseconds]`.
fn set(store: &KvStore, args: &[Bytes]) -> RedisReply {
    let [_, key, value, options @ ..] = args else {
        return wrong_arity("set");
    };
    let ttl = match options {
        [] => None,
        [unit, amount] => {
            let Some(amount) = integer_arg(amount).filter(|n| *n > 0) else {
                return RedisReply::error("ERR invalid expire time in 'set' command");
            };
            match unit.to_ascii_uppercase().as_slice() {
                b"EX" => Some(Duration::from_secs(amount as u64)),
                b"PX" => Some(Duration::from_millis(amount as u64)),
                _ => return RedisReply::error("ERR syntax error"),
            }
        }
        _ => return RedisReply::error("ERR syntax error"),
    };
    if store.set(key.clone(), value.clone(), ttl) {
        RedisReply::ok()
    } else {
        RedisReply::error("ERR invalid expire time in 'set' command")
    }
}

/// The service: the store's commands, behind `AUTH password` when `password` is given
/// (commands before it are answered `-NOAUTH`, as redis answers them).
pub fn service(store: Arc<KvStore>, password: Option<String>) -> RedisService {
    let mut service = RedisService::new();
    let guarded = password.is_some();
    // Wraps a command so that it needs AUTH first (when the store has a password).
    let guard = move |f: Command| {
        move |ctx: &mut RedisContext, args: &[Bytes]| {
            if guarded && ctx.session::<Authenticated>().is_none() {
                return RedisReply::error("NOAUTH Authentication required.");
            }
            f(args)
        }
    };
    let commands: Vec<(&str, Command)> = vec![
        ("get", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, key] => store.get(key).into(),
                _ => wrong_arity("get"),
            })
        }),
        ("set", {
            let store = Arc::clone(&store);
            Box::new(move |args| set(&store, args))
        }),
        ("del", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, keys @ ..] if !keys.is_empty() => {
                    RedisReply::Integer(keys.iter().filter(|k| store.del(k)).count() as i64)
                }
                _ => wrong_arity("del"),
            })
        }),
        ("incr", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, key] => store.incr(key),
                _ => wrong_arity("incr"),
            })
        }),
        ("mget", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, keys @ ..] if !keys.is_empty() => {
                    RedisReply::Array(keys.iter().map(|k| store.get(k).into()).collect())
                }
                _ => wrong_arity("mget"),
            })
        }),
        ("expire", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, key, seconds] => match integer_arg(seconds) {
                    Some(s) if s > 0 => match store.expire(key, Duration::from_secs(s as u64)) {
                        Some(set) => RedisReply::Integer(set as i64),
                        None => RedisReply::error("ERR invalid expire time in 'expire' command"),
                    },
                    Some(_) => RedisReply::Integer(store.del(key) as i64),
                    None => RedisReply::error("ERR value is not an integer or out of range"),
                },
                _ => wrong_arity("expire"),
            })
        }),
        ("ttl", {
            let store = Arc::clone(&store);
            Box::new(move |args| match args {
                [_, key] => RedisReply::Integer(store.ttl(key)),
                _ => wrong_arity("ttl"),
            })
        }),
        (
            "config",
            // redis-benchmark asks `CONFIG GET save` and `CONFIG GET appendonly` first.
            Box::new(|args| match args {
                [_, sub, name] if sub.eq_ignore_ascii_case(b"get") => {
                    RedisReply::Array(vec![RedisReply::Bulk(name.clone()), RedisReply::bulk("")])
                }
                _ => RedisReply::error("ERR unsupported CONFIG subcommand"),
            }),
        ),
    ];
    for (name, command) in commands {
        service
            .add_command(name, guard(command))
            .expect("each name once");
    }
    service
        .add_command("ping", |_, args| match args {
            [_] => RedisReply::status("PONG"),
            [_, message] => RedisReply::Bulk(message.clone()),
            _ => wrong_arity("ping"),
        })
        .expect("ping once");
    service
        .add_command("auth", move |ctx, args| {
            let given = match args {
                [_, password] | [_, _, password] => password,
                _ => return wrong_arity("auth"),
            };
            match &password {
                None => RedisReply::error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ),
                Some(expected) if expected.as_bytes() == &given[..] => {
                    ctx.set_session(Authenticated);
                    RedisReply::ok()
                }
                Some(_) => RedisReply::error(
                    "WRONGPASS invalid username-password pair or user is disabled.",
                ),
            }
        })
        .expect("auth once");
    service
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves by hand.
    fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let start = Instant::now();
        let millis = Arc::new(AtomicU64::new(0));
        let read = Arc::clone(&millis);
        let clock: Clock =
            Arc::new(move || start + Duration::from_millis(read.load(Ordering::SeqCst)));
        (clock, millis)
    }

    fn key(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn keys_expire_by_the_clock() {
        let (clock, millis) = manual_clock();
        let store = KvStore::with_clock(clock);
        assert!(store.set(key("a"), key("1"), Some(Duration::from_secs(10))));
        assert!(store.set(key("b"), key("2"), None));
        assert!(
            !store.set(key("c"), key("3"), Some(Duration::MAX)),
            "past the clock"
        );
        assert_eq!(store.expire(&key("b"), Duration::MAX), None);
        assert_eq!(store.ttl(&key("a")), 10);
        assert_eq!(store.ttl(&key("b")), -1);
        assert_eq!(store.ttl(&key("c")), -2);
        millis.store(9_400, Ordering::SeqCst);
        assert_eq!(store.ttl(&key("a")), 1);
        assert_eq!(store.get(&key("a")), Some(key("1")));
        millis.store(10_000, Ordering::SeqCst);
        assert_eq!(store.get(&key("a")), None, "expired");
        assert_eq!(store.ttl(&key("a")), -2);
        assert_eq!(store.expire(&key("b"), Duration::from_secs(1)), Some(true));
        millis.store(11_000, Ordering::SeqCst);
        assert_eq!(store.get(&key("b")), None);
    }

    #[test]
    fn incr_counts_and_refuses_what_is_not_a_number() {
        let store = KvStore::new();
        assert_eq!(store.incr(&key("n")), RedisReply::Integer(1));
        assert_eq!(store.incr(&key("n")), RedisReply::Integer(2));
        store.set(key("s"), key("x"), None);
        assert!(store.incr(&key("s")).is_error());
        store.set(key("max"), Bytes::from(i64::MAX.to_string()), None);
        assert!(store.incr(&key("max")).is_error());
    }
}
