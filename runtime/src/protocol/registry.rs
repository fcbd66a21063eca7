//! The process-wide registry of framed protocols, by name, as brpc's `RegisterProtocol`:
//! channels find their protocol's [`ClientCodec`] here, and servers try every registered
//! [`ServerCodec`] on each new connection.

use std::sync::{Arc, LazyLock, RwLock};

use super::baidu_std::BaiduStd;
use super::codec::{ClientCodec, ServerCodec};
use super::hulu_pbrpc::HuluPbrpc;
use super::memcache::Memcache;
use super::nshead::{NovaPbrpc, Nshead, PublicPbrpc};
use super::redis::Redis;
use super::sofa_pbrpc::SofaPbrpc;
use crate::Error;

/// Protocols implemented on connections of their own (HTTP/1.1 through hyper, HTTP/2 through
/// h2) rather than as codecs on Brisk's framed connections: their names and aliases. No codec
/// may take these names.
pub(crate) const CONNECTION_OWNING: &[(&str, &[&str])] = &[("http", &[]), ("h2:grpc", &["grpc"])];

/// The name `name` stands for: a built-in protocol's alias becomes its name.
pub(crate) fn canonical_name(name: &str) -> &str {
    CONNECTION_OWNING
        .iter()
        .find(|(_, aliases)| aliases.contains(&name))
        .map_or(name, |(canonical, _)| canonical)
}

struct Registry {
    clients: Vec<Arc<dyn ClientCodec>>,
    servers: Vec<Arc<dyn ServerCodec>>,
}

/// The server codecs Brisk registers itself, first in `servers`.
const BUILTIN_SERVER_CODECS: usize = 4;

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        clients: vec![
            Arc::new(BaiduStd),
            Arc::new(HuluPbrpc),
            Arc::new(SofaPbrpc),
            Arc::new(Nshead),
            Arc::new(PublicPbrpc),
            Arc::new(NovaPbrpc),
            Arc::new(Redis),
            Arc::new(Memcache),
        ],
        // nshead (magic at offset 24) answers public_pbrpc and nova_pbrpc too.
        servers: vec![
            Arc::new(BaiduStd),
            Arc::new(HuluPbrpc),
            Arc::new(SofaPbrpc),
            Arc::new(Nshead),
        ],
    })
});

fn read() -> std::sync::RwLockReadGuard<'static, Registry> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> std::sync::RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

/// Refuses a name that is empty, built in, or taken.
fn check_name(name: &str, taken: impl Iterator<Item = &'static str>) -> Result<(), Error> {
    // `h2` is the name the HTTP/2 server answers to (brpc's HTTP/2 protocol).
    let reserved = name == "h2"
        || CONNECTION_OWNING
            .iter()
            .any(|(builtin, aliases)| *builtin == name || aliases.contains(&name));
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::invalid(format!("`{name}` is not a protocol name")));
    }
    if reserved || taken.into_iter().any(|t| t == canonical_name(name)) {
        return Err(Error::invalid(format!(
            "a protocol named `{name}` is registered already"
        )));
    }
    Ok(())
}

/// Registers the client half of a protocol: channels whose protocol is `codec.name()` use it.
/// A name that is taken (by a built-in protocol too) is refused with EINVAL.
///
/// ```
/// # use brisk::protocol::*;
/// # struct Mine;
/// # impl ClientCodec for Mine {
/// #     fn name(&self) -> &'static str { "doc_mine" }
/// #     fn encode_request(&self, _: &OutgoingRequest<'_>) -> Result<OutFrame, brisk::Status> { unimplemented!() }
/// #     fn decode_response(&self, _: &mut bytes::BytesMut, _: usize) -> Result<Option<IncomingResponse>, ParseError> { unimplemented!() }
/// # }
/// brisk::protocol::register_client(Mine).unwrap();
/// assert!(brisk::protocol::register_client(Mine).is_err(), "once per name");
/// let channel = brisk::Channel::builder().protocol("doc_mine");
/// ```
pub fn register_client(codec: impl ClientCodec) -> Result<(), Error> {
    let mut registry = write();
    check_name(codec.name(), registry.clients.iter().map(|c| c.name()))?;
    registry.clients.push(Arc::new(codec));
    Ok(())
}

/// Registers the server half of a protocol: every server started from now on tries it on each
/// new connection, after the built-in protocols (baidu_std, HTTP/2, HTTP/1.1, which it cannot
/// shadow) and the protocols registered before it. A name that is taken is refused with
/// EINVAL.
pub fn register_server(codec: impl ServerCodec) -> Result<(), Error> {
    let mut registry = write();
    check_name(codec.name(), registry.servers.iter().map(|c| c.name()))?;
    registry.servers.push(Arc::new(codec));
    Ok(())
}

/// The client codec registered as `name` (or one of its aliases).
pub(crate) fn client_codec(name: &str) -> Option<Arc<dyn ClientCodec>> {
    let name = canonical_name(name);
    read().clients.iter().find(|c| c.name() == name).cloned()
}

/// Server codecs, in the order they were registered.
pub(crate) type ServerCodecs = Vec<Arc<dyn ServerCodec>>;

/// The server codecs Brisk registers itself, and those registered since, in order.
pub(crate) fn server_codecs() -> (ServerCodecs, ServerCodecs) {
    let registry = read();
    let (builtin, added) = registry.servers.split_at(BUILTIN_SERVER_CODECS);
    (builtin.to_vec(), added.to_vec())
}

/// The names of the registered client protocols, for error messages.
pub(crate) fn client_names() -> Vec<&'static str> {
    read().clients.iter().map(|c| c.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_cannot_be_taken() {
        for name in [
            "baidu_std",
            "hulu_pbrpc",
            "sofa_pbrpc",
            "nshead",
            "public_pbrpc",
            "nova_pbrpc",
            "redis",
            "memcache",
            "http",
            "h2:grpc",
            "grpc",
            "h2",
            "",
            "two words",
        ] {
            assert!(
                check_name(name, read().clients.iter().map(|c| c.name())).is_err(),
                "{name}"
            );
        }
        assert!(client_codec("baidu_std").is_some());
        assert!(client_codec("carrier_pigeon").is_none());
        assert_eq!(server_codecs().0[0].name(), "baidu_std");
    }
}
