//! The process-wide registries of naming-service URL schemes, as brpc's
//! `NamingServiceExtension()`: which [`NamingService`] a `scheme://` URL makes, and how a
//! server puts itself under such a URL ([`ServerBuilder::register`](crate::ServerBuilder::register)).
//!
//! The schemes of this module (`list`, `file`, `http`, `https`, `dns`, `zk`) are here from
//! the start; `etcd`, whose client is built on channels (a layer above this one), is added by
//! `crate::global` before the first look-up, as brpc's `GlobalInitializeOrDie` adds its
//! extensions.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use super::{DnsNamingService, FileNamingService, ListNamingService, Registrar, SchemeFactory};
use crate::Error;

#[derive(Default)]
struct Registry {
    schemes: HashMap<String, SchemeFactory>,
    registrars: HashMap<String, Registrar>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let mut scheme = |name: &str, factory: SchemeFactory| {
        registry.schemes.insert(name.to_owned(), factory);
    };
    scheme(
        "list",
        Arc::new(|rest| Ok(Box::new(ListNamingService::parse(rest)?))),
    );
    scheme(
        "file",
        Arc::new(|rest| Ok(Box::new(FileNamingService::new(rest)?))),
    );
    for name in ["http", "dns"] {
        scheme(
            name,
            Arc::new(|rest| Ok(Box::new(DnsNamingService::new(rest)?))),
        );
    }
    scheme(
        "https",
        Arc::new(|rest| {
            Ok(Box::new(
                DnsNamingService::new(rest)?.with_default_port(443),
            ))
        }),
    );
    #[cfg(feature = "zookeeper")]
    {
        use super::{Registration, ZooKeeperNamingService, ZooKeeperRegistration};
        scheme(
            "zk",
            Arc::new(|rest| Ok(Box::new(ZooKeeperNamingService::new(rest)?))),
        );
        registry.registrars.insert(
            "zk".to_owned(),
            Arc::new(|url, address, ttl| {
                let (url, address) = (url.to_owned(), address.to_owned());
                Box::pin(async move {
                    let registration = ZooKeeperRegistration::register(&url, &address, ttl).await?;
                    Ok(Box::new(registration) as Box<dyn Registration>)
                })
            }),
        );
    }
    RwLock::new(registry)
});

fn read() -> std::sync::RwLockReadGuard<'static, Registry> {
    crate::global::initialize();
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> std::sync::RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

/// Refuses an empty scheme, or one with characters a URL scheme cannot have.
fn check_scheme(scheme: &str) -> Result<(), Error> {
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!("`{scheme}` is not a URL scheme")))
    }
}

/// Makes `scheme://...` URLs name the naming services `factory` builds, for
/// [`from_url`](super::from_url) and so for
/// [`ChannelBuilder::connect_cluster`](crate::ChannelBuilder::connect_cluster) (brpc's
/// `NamingServiceExtension()->RegisterOrDie`). Schemes are matched without regard to case.
///
/// Fails with [`errno::EINVAL`](crate::errno::EINVAL) if the scheme is not a URL scheme or is
/// taken (the built-in ones included).
///
/// ```
/// use std::sync::Arc;
/// use brisk::naming::{self, ListNamingService};
///
/// // `registry://echo` lists the servers an in-house registry knows as `echo`.
/// naming::register_scheme(
///     "registry",
///     Arc::new(|name: &str| {
///         let servers = if name == "echo" { "127.0.0.1:8000" } else { "" };
///         Ok(Box::new(ListNamingService::parse(servers)?))
///     }),
/// )?;
/// assert!(naming::from_url("registry://echo").is_ok());
/// assert!(naming::register_scheme("list", Arc::new(|_: &str| unreachable!())).is_err());
/// # Ok::<(), brisk::Error>(())
/// ```
pub fn register_scheme(scheme: &str, factory: SchemeFactory) -> Result<(), Error> {
    insert_new(
        scheme,
        factory,
        |registry| &mut registry.schemes,
        |scheme| format!("naming scheme `{scheme}` is registered already"),
    )
}

/// Makes [`ServerBuilder::register`](crate::ServerBuilder::register) accept `scheme://...`
/// URLs, putting servers there with `registrar`. Schemes are matched without regard to case.
/// The server calls `registrar` once its port is open (its start fails if the registrar
/// does), and [`Registration::deregister`](super::Registration::deregister) first thing when
/// it stops.
///
/// Fails with [`errno::EINVAL`](crate::errno::EINVAL) if the scheme is not a URL scheme or is
/// taken (`etcd` and `zk` are built in, with their features).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use brisk::naming::{self, BoxFuture, Registration};
///
/// /// An entry in an in-house registry (here, a log line).
/// #[derive(Debug)]
/// struct Entry(String);
///
/// impl Registration for Entry {
///     fn name(&self) -> String {
///         self.0.clone()
///     }
///     fn deregister(self: Box<Self>) -> BoxFuture<'static, Result<(), brisk::Status>> {
///         Box::pin(async move {
///             println!("{} leaves", self.0);
///             Ok(())
///         })
///     }
/// }
///
/// naming::register_registrar(
///     "logged",
///     Arc::new(|url: &str, address: &str, _ttl: Duration| {
///         let entry = Entry(format!("{address} in {url}"));
///         Box::pin(async move {
///             println!("{} joins", entry.0);
///             Ok(Box::new(entry) as Box<dyn Registration>)
///         })
///     }),
/// )?;
/// // Server::builder().register("logged://echo") now registers there.
/// # Ok::<(), brisk::Error>(())
/// ```
pub fn register_registrar(scheme: &str, registrar: Registrar) -> Result<(), Error> {
    insert_new(
        scheme,
        registrar,
        |registry| &mut registry.registrars,
        |scheme| format!("a registrar for `{scheme}` is registered already"),
    )
}

/// Adds `value` under `scheme` (checked, in lower case) to the table `table` picks, after the
/// built-in entries (`global::initialize` first); EINVAL with `taken`'s text if it is there.
fn insert_new<T>(
    scheme: &str,
    value: T,
    table: impl FnOnce(&mut Registry) -> &mut HashMap<String, T>,
    taken: impl FnOnce(&str) -> String,
) -> Result<(), Error> {
    check_scheme(scheme)?;
    crate::global::initialize();
    let scheme = scheme.to_ascii_lowercase();
    let mut registry = write();
    let table = table(&mut registry);
    if table.contains_key(&scheme) {
        return Err(Error::invalid(taken(&scheme)));
    }
    table.insert(scheme, value);
    Ok(())
}

/// The factory of `scheme`, if one is registered.
pub(crate) fn scheme(scheme: &str) -> Option<SchemeFactory> {
    read().schemes.get(&scheme.to_ascii_lowercase()).cloned()
}

/// The registrar of `scheme`, if one is registered.
pub(crate) fn registrar(scheme: &str) -> Option<Registrar> {
    read().registrars.get(&scheme.to_ascii_lowercase()).cloned()
}

/// The registered schemes, sorted (for messages).
pub(crate) fn schemes() -> Vec<String> {
    let mut all: Vec<String> = read().schemes.keys().cloned().collect();
    all.sort();
    all
}

/// The schemes servers can register in, sorted (for messages).
pub(crate) fn registrar_schemes() -> Vec<String> {
    let mut all: Vec<String> = read().registrars.keys().cloned().collect();
    all.sort();
    all
}

/// Adds built-in entries from above this layer (`crate::global`, before any other
/// registration: `register_scheme` and `register_registrar` run `global::initialize` first).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) fn add_builtin(
    scheme: &str,
    factory: Option<SchemeFactory>,
    registrar: Option<Registrar>,
) {
    let mut registry = write();
    if let Some(factory) = factory {
        registry.schemes.insert(scheme.to_owned(), factory);
    }
    if let Some(registrar) = registrar {
        registry.registrars.insert(scheme.to_owned(), registrar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_checked_and_not_taken_twice() {
        for bad in ["", "1abc", "a b", "a/b", "a:"] {
            let factory: SchemeFactory = Arc::new(|_| unreachable!());
            assert!(register_scheme(bad, factory).is_err(), "{bad}");
        }
        let factory: SchemeFactory = Arc::new(|rest| Ok(Box::new(ListNamingService::parse(rest)?)));
        register_scheme("Test-Registry+1", factory.clone()).unwrap();
        assert!(scheme("test-registry+1").is_some());
        assert!(register_scheme("test-registry+1", factory.clone()).is_err());
        assert!(register_scheme("LIST", factory).is_err());
        assert!(schemes().contains(&"test-registry+1".to_owned()));
    }
}
