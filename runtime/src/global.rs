//! The one-time set-up Brisk does before a registry is first read, as brpc's
//! `GlobalInitializeOrDie()` (global.cpp) registers its protocols, naming services and load
//! balancers: here, the extensions built on top of channels and servers, which the registries
//! below them cannot name.
//!
//! Today that is etcd (feature `etcd`): its naming service and its registrar call etcd
//! through generated stubs over a [`Channel`](crate::Channel), so they live above the channel,
//! while the naming registry they join lives below it. The registry calls [`initialize`]
//! before every look-up: the one call in the crate that goes up the layers, and the only use
//! of this module (the layering test checks both).

use std::sync::Once;

/// Registers the extensions from above the registries' layer, once per process. Cheap after
/// the first call (one atomic load).
///
/// What runs inside must not read a registry (`naming::registry::scheme`, ...): that calls
/// `initialize` again, from inside the `Once`, which would deadlock. Making the factories
/// (closures, not naming services) and writing them in is all it does.
pub(crate) fn initialize() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "etcd")]
        crate::naming::registry::add_builtin(
            "etcd",
            Some(crate::etcd::scheme_factory()),
            Some(crate::etcd::registrar()),
        );
    });
}
