//! Naming services by URL scheme, as brpc's naming-service registry: `list://`, `file://`,
//! `http://`, `https://`, `dns://`, `etcd://`, `zk://`.

#[cfg(feature = "etcd")]
use super::EtcdNamingService;
use super::{DnsNamingService, FileNamingService, ListNamingService, NamingService};
use crate::Error;

/// The naming service a URL names (`list://`, `file://`, `http://`, `dns://`, `etcd://`,
/// `zk://`).
/// Unknown schemes and malformed URLs get [`errno::EINVAL`](crate::errno::EINVAL).
pub fn from_url(url: &str) -> Result<Box<dyn NamingService>, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::invalid(format!(
            "`{url}` is not a naming service URL (scheme://...)"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "list" => Ok(Box::new(ListNamingService::parse(rest)?)),
        "file" => Ok(Box::new(FileNamingService::new(rest)?)),
        "http" | "dns" => Ok(Box::new(DnsNamingService::new(rest)?)),
        "https" => Ok(Box::new(
            DnsNamingService::new(rest)?.with_default_port(443),
        )),
        #[cfg(feature = "etcd")]
        "etcd" => Ok(Box::new(EtcdNamingService::new(rest)?)),
        #[cfg(not(feature = "etcd"))]
        "etcd" => Err(Error::invalid(format!(
            "`{url}`: etcd naming needs brisk's `etcd` feature"
        ))),
        #[cfg(feature = "zookeeper")]
        "zk" => Ok(Box::new(super::ZooKeeperNamingService::new(rest)?)),
        #[cfg(not(feature = "zookeeper"))]
        "zk" => Err(Error::invalid(format!(
            "`{url}`: ZooKeeper naming needs brisk's `zookeeper` feature"
        ))),
        other => Err(Error::invalid(format!(
            "`{url}`: unknown naming service `{other}` (expected list, file, http, dns, etcd or zk)"
        ))),
    }
}
