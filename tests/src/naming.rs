//! Helpers for the naming-service tests (etcd, ZooKeeper).

use std::time::Duration;

use brisk::naming::{NamingService, ServerNode};

/// The node `addr` with `tag` (empty for none).
pub fn node(addr: &str, tag: &str) -> ServerNode {
    ServerNode::with_tag(addr.parse().unwrap(), tag)
}

/// The next list of `ns`, which must come within `deadline`.
pub async fn next_within(ns: &mut Box<dyn NamingService>, deadline: Duration) -> Vec<ServerNode> {
    tokio::time::timeout(deadline, ns.next())
        .await
        .unwrap_or_else(|_| panic!("no new list within {deadline:?}"))
        .expect("a list")
}
