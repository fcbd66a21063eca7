//! Naming services by URL scheme, as brpc's naming-service registry: `list://`, `file://`,
//! `http://`, `https://`, `dns://`, `etcd://`, `zk://`, and any scheme added with
//! [`register_scheme`](super::register_scheme).

use super::{registry, NamingService};
use crate::Error;

/// The naming service a URL names (`list://`, `file://`, `http://`, `dns://`, `etcd://`,
/// `zk://`, or a scheme added with [`register_scheme`](super::register_scheme)).
/// Unknown schemes and malformed URLs get [`errno::EINVAL`](crate::errno::EINVAL).
pub fn from_url(url: &str) -> Result<Box<dyn NamingService>, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::invalid(format!(
            "`{url}` is not a naming service URL (scheme://...)"
        )));
    };
    if let Some(factory) = registry::scheme(scheme) {
        return factory(rest);
    }
    let feature = match scheme.to_ascii_lowercase().as_str() {
        "etcd" => Some("etcd naming needs brisk's `etcd` feature"),
        "zk" => Some("ZooKeeper naming needs brisk's `zookeeper` feature"),
        _ => None,
    };
    if let Some(feature) = feature {
        return Err(Error::invalid(format!("`{url}`: {feature}")));
    }
    Err(Error::invalid(format!(
        "`{url}`: unknown naming service `{scheme}` (known: {})",
        registry::schemes().join(", ")
    )))
}
