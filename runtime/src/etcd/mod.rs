//! etcd, through its own gRPC API, with stubs Brisk generates (feature `etcd`): the
//! `etcd://` naming service ([`EtcdNamingService`]) and servers registering themselves
//! ([`EtcdRegistration`], which [`ServerBuilder::register`](crate::ServerBuilder::register)
//! uses).
//!
//! Brisk using Brisk: etcd's `.proto` files (the part of etcd's v3 API these call, vendored in
//! `runtime/proto/etcd/`) go through Brisk's own code generator, and the generated clients
//! call etcd over a Brisk [`Channel`](crate::Channel) speaking `h2:grpc`. The generated code is
//! kept in `generated/` so that building Brisk needs no generator; a test checks it is what
//! the generator makes today.
//!
//! This module sits above channels and servers. The naming registry below them learns the
//! `etcd` scheme from `crate::global` (as brpc's `GlobalInitializeOrDie` registers its naming
//! services) before anything looks a scheme up, so `etcd://` URLs work wherever naming URLs do:
//! [`naming::from_url`](crate::naming::from_url),
//! [`ChannelBuilder::connect_cluster`](crate::ChannelBuilder::connect_cluster) and
//! [`ServerBuilder::register`](crate::ServerBuilder::register).

mod client;
mod generated;
mod naming;
mod registration;

use std::sync::Arc;

use crate::naming::{Registrar, Registration, SchemeFactory};

pub use naming::EtcdNamingService;
pub use registration::EtcdRegistration;

/// What `etcd://` URLs make: an [`EtcdNamingService`].
pub(crate) fn scheme_factory() -> SchemeFactory {
    Arc::new(|rest| Ok(Box::new(EtcdNamingService::new(rest)?)))
}

/// How servers register under `etcd://` URLs: an [`EtcdRegistration`].
pub(crate) fn registrar() -> Registrar {
    Arc::new(|url, address, ttl| {
        let (url, address) = (url.to_owned(), address.to_owned());
        Box::pin(async move {
            let registration = EtcdRegistration::register(&url, &address, ttl).await?;
            Ok(Box::new(registration) as Box<dyn Registration>)
        })
    })
}
