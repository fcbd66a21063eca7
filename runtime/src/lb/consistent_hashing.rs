//! `c_murmurhash` and `c_md5`: consistent hashing of the call's request code, as brpc's
//! `ConsistentHashingLoadBalancer`.
//!
//! # The ring
//!
//! Every server is placed `replicas` times (100 by default, `c_murmurhash:replicas=N`) on a ring
//! of 32-bit positions. Point `i` of a server sits at `hash("<ip>:<port>-<i>")`: the same key
//! brpc builds (`snprintf("%s-%lu", endpoint2str(remote_side), i)` in
//! `DefaultReplicaPolicy::Build`), hashed with the same function, so a Brisk client and a brpc
//! client with the same server list send each request code to the same server:
//!
//! - `c_murmurhash`: MurmurHash3 x86_32 with seed 0 (brpc's `MurmurHash32`);
//! - `c_md5`: the first four bytes of the MD5 digest read little-endian (brpc's `MD5Hash32`,
//!   the memcached / ketama "md5" server hash).
//!
//! The points live in one array sorted by position, an immutable snapshot behind an
//! [`ArcSwap`] that [`reset`](LoadBalancer::reset) rebuilds and swaps in, so a select never
//! waits on a reset and never allocates.
//!
//! # Picking
//!
//! The caller hashes its key and passes the hash as the request code
//! ([`Controller::set_request_code`](crate::Controller::set_request_code)); as in brpc the code
//! itself is the position on the ring — it is not hashed again — and must fit in 32 bits.
//! A binary search finds the first point at or after the code (wrapping to the first point),
//! O(log(servers × replicas)). When that point's server is unavailable, or already tried by
//! this call, the walk goes on clockwise to the next point of another server, so the keys of a
//! server that is down spread over its ring neighbours and come back when it does. When every
//! available server was already tried, the first tried one met on the walk is taken (a retry
//! on a tried server beats no server at all). The walk visits at most every point once: O(1)
//! points in the common case, O(servers × replicas) only when nearly every server is down.
//!
//! A call without a request code, or with one above `u32::MAX`, fails with [`errno::EINVAL`]:
//! brpc's `SelectServer` returns `EINVAL` in both cases ("Controller.set_request_code() is
//! required", "request_code must be 32-bit currently"), and it is the caller's misuse of the
//! API, not a malformed request (which `EREQUEST` would say).
//!
//! Adding a server moves only the keys that now land on its points (about 1/(n+1) of them), all
//! onto it; removing one moves only its own keys, onto its ring neighbours.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use md5::{Digest, Md5};

use super::{no_server_available, Backend, LbParams, LoadBalancer, SelectIn};
use crate::{errno, Status};

/// Virtual nodes per server when `replicas=` is not given (brpc's `-chash_num_replicas`).
const DEFAULT_REPLICAS: u64 = 100;

/// The most virtual nodes per server `replicas=` accepts: beyond this a ring of a few hundred
/// servers would take gigabytes for no better balance.
const MAX_REPLICAS: u64 = 65_536;

/// The hash function placing the points on the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashKind {
    /// MurmurHash3 x86_32, seed 0 (`c_murmurhash`).
    Murmur3,
    /// The first 4 bytes of MD5, little-endian (`c_md5`, memcached-compatible).
    Md5,
}

impl HashKind {
    /// The balancer's name, for messages.
    fn lb_name(self) -> &'static str {
        match self {
            HashKind::Murmur3 => "c_murmurhash",
            HashKind::Md5 => "c_md5",
        }
    }

    /// The ring position of `key`.
    fn hash(self, key: &[u8]) -> u32 {
        match self {
            HashKind::Murmur3 => murmur3_x86_32(key, 0),
            HashKind::Md5 => md5_hash32(key),
        }
    }
}

/// MurmurHash3's x86 32-bit variant (Austin Appleby's public-domain algorithm), as brpc's
/// `butil::MurmurHash3_x86_32`. Blocks are read little-endian, so the result is the same on
/// every platform (and equals brpc's on the little-endian machines it runs on).
pub(crate) fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);

    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        h ^= mix(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .enumerate()
            .fold(0u32, |k, (i, byte)| k | u32::from(*byte) << (8 * i));
        h ^= mix(k);
    }
    // The length is mixed in modulo 2^32, as the reference's `(uint32_t)len`.
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The first four bytes of `md5(data)` read little-endian: brpc's `MD5Hash32`, the server hash
/// of memcached clients' "md5" distribution.
pub(crate) fn md5_hash32(data: &[u8]) -> u32 {
    let digest = Md5::digest(data);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// One virtual node: a position and the index of its server in [`Ring::servers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    hash: u32,
    server: usize,
}

/// An immutable ring: the servers and their points sorted by position.
#[derive(Debug, Default)]
struct Ring {
    /// The servers, without repeats, sorted by node so equal lists give equal rings.
    servers: Vec<Backend>,
    /// Every server's points, sorted by position (ties by server order).
    points: Vec<Point>,
}

impl Ring {
    /// The index in `points` of the first point at or after `position`, wrapping to 0.
    /// `points` must not be empty.
    fn first_at_or_after(&self, position: u32) -> usize {
        let i = self.points.partition_point(|p| p.hash < position);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// Walks clockwise from `position` to the first available server the call has not tried,
    /// else the first available one it has tried.
    fn pick(&self, position: u32, input: &SelectIn<'_>) -> Option<&Backend> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        let start = self.first_at_or_after(position);
        let mut tried: Option<usize> = None;
        let mut last_server = usize::MAX;
        for step in 0..n {
            let mut i = start + step;
            if i >= n {
                i -= n;
            }
            let server = self.points[i].server;
            // Consecutive points of one server need one look only.
            if server == last_server {
                continue;
            }
            last_server = server;
            let Some(backend) = self.servers.get(server) else {
                continue;
            };
            if !backend.is_available() {
                continue;
            }
            if input.is_excluded(backend) {
                tried.get_or_insert(server);
                continue;
            }
            return Some(backend);
        }
        tried.and_then(|server| self.servers.get(server))
    }
}

/// The `c_murmurhash` / `c_md5` balancer: a ring of `replicas` points per server, the call's
/// request code picking the first point at or after it.
pub(crate) struct ConsistentHashing {
    kind: HashKind,
    replicas: u64,
    ring: ArcSwap<Ring>,
    /// Serializes resets (never taken by select).
    resetting: Mutex<()>,
}

impl ConsistentHashing {
    /// A balancer hashing with `kind`; takes `replicas=N` from `params` (default 100,
    /// 1..=65536, else [`errno::EINVAL`]).
    pub(crate) fn new(kind: HashKind, params: &mut LbParams) -> Result<Self, Status> {
        let replicas = params.take_u64("replicas")?.unwrap_or(DEFAULT_REPLICAS);
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(Status::new(
                errno::EINVAL,
                format!(
                    "{}: replicas={replicas} is out of range (1..={MAX_REPLICAS})",
                    kind.lb_name()
                ),
            ));
        }
        Ok(ConsistentHashing {
            kind,
            replicas,
            ring: ArcSwap::from_pointee(Ring::default()),
            resetting: Mutex::new(()),
        })
    }

    /// Builds the ring of `servers`.
    fn build(&self, servers: &[Backend]) -> Ring {
        let mut servers = servers.to_vec();
        servers.sort_by(|a, b| a.node().cmp(b.node()));
        servers.dedup();
        let replicas = usize::try_from(self.replicas).unwrap_or(usize::MAX);
        let mut points = Vec::with_capacity(servers.len().saturating_mul(replicas));
        let mut key = String::with_capacity(64);
        for (server, backend) in servers.iter().enumerate() {
            for i in 0..self.replicas {
                key.clear();
                // brpc's key: endpoint2str(addr) + "-" + i, e.g. "10.0.0.1:8000-7". (brpc
                // formats into a 32-byte buffer, too short for long IPv6 keys; here the whole
                // key is hashed.)
                let _ = write!(key, "{}-{i}", backend.addr());
                points.push(Point {
                    hash: self.kind.hash(key.as_bytes()),
                    server,
                });
            }
        }
        points.sort_unstable();
        Ring { servers, points }
    }
}

impl fmt::Debug for ConsistentHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.ring.load();
        f.debug_struct("ConsistentHashing")
            .field("hash", &self.kind)
            .field("replicas", &self.replicas)
            .field("servers", &ring.servers)
            .finish()
    }
}

impl LoadBalancer for ConsistentHashing {
    fn request_code_for(&self, key: &[u8]) -> Option<u64> {
        Some(u64::from(self.kind.hash(key)))
    }

    fn reset(&self, servers: &[Backend]) {
        let _resetting = self.resetting.lock().unwrap_or_else(|e| e.into_inner());
        let ring = self.build(servers);
        self.ring.store(Arc::new(ring));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        let Some(code) = input.request_code else {
            return Err(Status::new(
                errno::EINVAL,
                format!("{} needs Controller::set_request_code", self.kind.lb_name()),
            ));
        };
        let Ok(position) = u32::try_from(code) else {
            return Err(Status::new(
                errno::EINVAL,
                format!(
                    "{}: request code {code} does not fit in 32 bits",
                    self.kind.lb_name()
                ),
            ));
        };
        let ring = self.ring.load();
        ring.pick(position, input)
            .cloned()
            .ok_or_else(no_server_available)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use super::*;
    use crate::naming::ServerNode;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8000))
    }

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::detached(ServerNode::new(addr(i))))
            .collect()
    }

    fn balancer(kind: HashKind, spec_params: &str) -> Result<ConsistentHashing, Status> {
        let mut params = LbParams::parse("test", spec_params)?;
        ConsistentHashing::new(kind, &mut params)
    }

    fn with_code(code: u64) -> SelectIn<'static> {
        SelectIn {
            request_code: Some(code),
            excluded: &[],
        }
    }

    /// The codes a user would pass: the hash of their keys.
    fn codes(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| u64::from(murmur3_x86_32(format!("user-{i}").as_bytes(), 0)))
            .collect()
    }

    fn route(lb: &ConsistentHashing, codes: &[u64]) -> Vec<SocketAddr> {
        codes
            .iter()
            .map(|code| lb.select(&with_code(*code)).expect("a server").addr())
            .collect()
    }

    #[test]
    fn murmur3_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        // Tails of 1, 2 and 3 bytes.
        assert_eq!(murmur3_x86_32(&[0x21], 0), 0x7266_1cf4);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43], 0), 0xa0f7_b07a);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65], 0), 0x7e4a_8634);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
    }

    #[test]
    fn md5_vectors() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(md5_hash32(b""), 0xd98c_1dd4);
        // md5("abc") = 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(md5_hash32(b"abc"), 0x9850_0190);
    }

    #[test]
    fn point_keys_are_brpcs() {
        let lb = balancer(HashKind::Murmur3, "replicas=3").unwrap();
        let server = Backend::detached(ServerNode::new("10.0.0.1:8000".parse().unwrap()));
        let ring = lb.build(std::slice::from_ref(&server));
        let mut expected: Vec<u32> = (0..3)
            .map(|i| murmur3_x86_32(format!("10.0.0.1:8000-{i}").as_bytes(), 0))
            .collect();
        expected.sort_unstable();
        let got: Vec<u32> = ring.points.iter().map(|p| p.hash).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn parameters() {
        assert_eq!(balancer(HashKind::Md5, "").unwrap().replicas, 100);
        assert_eq!(balancer(HashKind::Md5, "replicas=7").unwrap().replicas, 7);
        for bad in ["replicas=0", "replicas=65537", "replicas=x", "replicas=-1"] {
            let err = balancer(HashKind::Murmur3, bad).unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{bad}");
        }
    }

    #[test]
    fn same_code_same_server() {
        for kind in [HashKind::Murmur3, HashKind::Md5] {
            let lb = balancer(kind, "").unwrap();
            lb.reset(&backends(10));
            for code in codes(1000) {
                let first = lb.select(&with_code(code)).unwrap();
                for _ in 0..3 {
                    assert_eq!(lb.select(&with_code(code)).unwrap(), first);
                }
            }
            // The order the naming service lists the servers in does not matter.
            let other = balancer(kind, "").unwrap();
            let mut reversed = backends(10);
            reversed.reverse();
            other.reset(&reversed);
            let codes = codes(1000);
            assert_eq!(route(&lb, &codes), route(&other, &codes));
        }
    }

    #[test]
    fn spreads_codes_evenly() {
        for kind in [HashKind::Murmur3, HashKind::Md5] {
            let lb = balancer(kind, "").unwrap();
            lb.reset(&backends(10));
            let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
            for server in route(&lb, &codes(100_000)) {
                *counts.entry(server).or_default() += 1;
            }
            assert_eq!(counts.len(), 10);
            for (server, count) in counts {
                assert!(
                    (5_000..=15_000).contains(&count),
                    "{kind:?}: {server} got {count} of 100000"
                );
            }
        }
    }

    #[test]
    fn adding_a_server_moves_a_fair_share_onto_it_only() {
        for kind in [HashKind::Murmur3, HashKind::Md5] {
            let lb = balancer(kind, "").unwrap();
            let mut servers = backends(11);
            let newcomer = servers.pop().unwrap();
            lb.reset(&servers);
            let codes = codes(100_000);
            let before = route(&lb, &codes);
            servers.push(newcomer.clone());
            lb.reset(&servers);
            let after = route(&lb, &codes);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if b != a {
                    assert_eq!(
                        *a,
                        newcomer.addr(),
                        "{kind:?}: a key moved between old servers"
                    );
                    moved += 1;
                }
            }
            assert!(
                (5_000..=15_000).contains(&moved),
                "{kind:?}: {moved} of 100000 keys moved"
            );
        }
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        for kind in [HashKind::Murmur3, HashKind::Md5] {
            let lb = balancer(kind, "").unwrap();
            let mut servers = backends(10);
            lb.reset(&servers);
            let codes = codes(100_000);
            let before = route(&lb, &codes);
            let gone = servers.remove(3);
            lb.reset(&servers);
            let after = route(&lb, &codes);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if *b == gone.addr() {
                    assert_ne!(*a, gone.addr());
                    moved += 1;
                } else {
                    assert_eq!(a, b, "{kind:?}: a key of a remaining server moved");
                }
            }
            assert!(moved > 0);
        }
    }

    /// The server the ring gives `code` when the servers in `skip` cannot take it, computed by
    /// walking the points directly.
    fn expected_walk(lb: &ConsistentHashing, code: u32, skip: &[SocketAddr]) -> SocketAddr {
        let ring = lb.ring.load();
        let n = ring.points.len();
        let start = ring.points.iter().position(|p| p.hash >= code).unwrap_or(0);
        (0..n)
            .map(|step| ring.servers[ring.points[(start + step) % n].server].addr())
            .find(|addr| !skip.contains(addr))
            .unwrap()
    }

    #[test]
    fn unavailable_goes_to_the_next_server_on_the_ring() {
        let lb = balancer(HashKind::Murmur3, "").unwrap();
        let servers = backends(10);
        lb.reset(&servers);
        for code in codes(200) {
            let chosen = lb.select(&with_code(code)).unwrap();
            assert_eq!(chosen.addr(), expected_walk(&lb, code as u32, &[]));
            chosen.set_available(false);
            let next = lb.select(&with_code(code)).unwrap();
            assert_ne!(next, chosen);
            assert_eq!(
                next.addr(),
                expected_walk(&lb, code as u32, &[chosen.addr()])
            );
            // Excluded (already tried) servers are skipped the same way.
            let excluded = [next.addr()];
            let third = lb
                .select(&SelectIn {
                    request_code: Some(code),
                    excluded: &excluded,
                })
                .unwrap();
            assert_eq!(
                third.addr(),
                expected_walk(&lb, code as u32, &[chosen.addr(), next.addr()])
            );
            chosen.set_available(true);
            assert_eq!(lb.select(&with_code(code)).unwrap(), chosen);
        }
    }

    #[test]
    fn tried_servers_are_taken_when_nothing_else_is_left() {
        let lb = balancer(HashKind::Md5, "").unwrap();
        let servers = backends(3);
        lb.reset(&servers);
        let all: Vec<SocketAddr> = servers.iter().map(Backend::addr).collect();
        servers[0].set_available(false);
        let picked = lb
            .select(&SelectIn {
                request_code: Some(12345),
                excluded: &all,
            })
            .unwrap();
        assert_ne!(picked, servers[0]);
        for server in &servers {
            server.set_available(false);
        }
        let err = lb.select(&with_code(12345)).unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
    }

    #[test]
    fn request_code_is_required_and_32_bit() {
        let lb = balancer(HashKind::Murmur3, "").unwrap();
        lb.reset(&backends(3));
        let err = lb
            .select(&SelectIn {
                request_code: None,
                excluded: &[],
            })
            .unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
        assert!(err
            .message()
            .contains("c_murmurhash needs Controller::set_request_code"));
        let err = lb.select(&with_code(u64::from(u32::MAX) + 1)).unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
        assert!(lb.select(&with_code(u64::from(u32::MAX))).is_ok());
        assert!(lb.select(&with_code(0)).is_ok());
    }

    #[test]
    fn empty_ring_and_duplicates() {
        let lb = balancer(HashKind::Murmur3, "replicas=10").unwrap();
        let err = lb.select(&with_code(1)).unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
        let servers = backends(2);
        let twice = [servers.clone(), servers.clone()].concat();
        lb.reset(&twice);
        let ring = lb.ring.load();
        assert_eq!(ring.servers.len(), 2);
        assert_eq!(ring.points.len(), 20);
        drop(ring);
        lb.reset(&[]);
        assert_eq!(
            lb.select(&with_code(1)).unwrap_err().code(),
            errno::EHOSTDOWN
        );
    }

    #[test]
    fn reset_under_concurrent_selects() {
        let lb = balancer(HashKind::Murmur3, "").unwrap();
        let servers = backends(20);
        lb.reset(&servers);
        let codes = codes(1000);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        for code in &codes {
                            // Fails only while the ring is being reset to no server.
                            if let Err(status) = lb.select(&with_code(*code)) {
                                assert_eq!(status.code(), errno::EHOSTDOWN);
                            }
                        }
                    }
                });
            }
            scope.spawn(|| {
                for i in 0..50 {
                    lb.reset(&servers[..(i % 20)]);
                }
                lb.reset(&servers);
            });
        });
        assert!(lb.select(&with_code(codes[0])).is_ok());
    }
}
