//! The hosted services' descriptors in one pool, for gRPC server reflection: built once per
//! server, on the first reflection call (the services do not change while it runs).

use prost_reflect::{DescriptorPool, FileDescriptor};

use super::registry::Registry;
use super::MessageSchema;

/// What reflection knows: the hosted services' descriptors, in one pool.
#[derive(Debug)]
pub(crate) struct DescriptorIndex {
    pool: DescriptorPool,
    /// The hosted services the pool describes, sorted.
    services: Vec<String>,
}

impl DescriptorIndex {
    /// Every hosted service's descriptor set, merged (a set that does not decode is logged
    /// and left out).
    pub(crate) fn of(registry: &Registry) -> DescriptorIndex {
        let mut pool = DescriptorPool::new();
        let mut services = Vec::new();
        for service in registry.services() {
            let MessageSchema::Protobuf {
                file_descriptor_set,
            } = service.schema()
            else {
                continue;
            };
            if let Err(e) = pool.decode_file_descriptor_set(file_descriptor_set) {
                tracing::warn!(
                    service = service.full_name(),
                    "reflection leaves out descriptors that do not decode: {e}"
                );
                continue;
            }
            if pool.get_service_by_name(service.full_name()).is_some() {
                services.push(service.full_name().to_owned());
            }
        }
        services.sort();
        services.dedup();
        DescriptorIndex { pool, services }
    }

    /// The file that defines `symbol`: a service, method, message, enum, field, enum value or
    /// extension, by full name.
    pub(crate) fn file_containing(&self, symbol: &str) -> Option<FileDescriptor> {
        let pool = &self.pool;
        if let Some(service) = pool.get_service_by_name(symbol) {
            return Some(service.parent_file());
        }
        if let Some(message) = pool.get_message_by_name(symbol) {
            return Some(message.parent_file());
        }
        if let Some(enumeration) = pool.get_enum_by_name(symbol) {
            return Some(enumeration.parent_file());
        }
        if let Some(extension) = pool.get_extension_by_name(symbol) {
            return Some(extension.parent_file());
        }
        // A method or field: its parent's file.
        if let Some((parent, _)) = symbol.rsplit_once('.') {
            let file = pool
                .get_service_by_name(parent)
                .map(|s| s.parent_file())
                .or_else(|| pool.get_message_by_name(parent).map(|m| m.parent_file()));
            if file.is_some() {
                return file;
            }
        }
        // An enum value, named beside its enum (`pkg.RED`, not `pkg.Color.RED`).
        pool.all_enums()
            .find(|e| e.values().any(|v| v.full_name() == symbol))
            .map(|e| e.parent_file())
    }

    /// The pool of every hosted service's files.
    pub(crate) fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The hosted services the pool describes, sorted.
    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }
}
