//! `/protobufs`: the hosted services and the messages and enums they use, each shown as
//! `.proto` source from the descriptors generated services carry (brpc's `/protobufs`).

use std::sync::Arc;

use crate::server::descriptor_index::DescriptorIndex;
use crate::server::state::Shared;

fn index(shared: &Shared) -> &DescriptorIndex {
    shared
        .reflection
        .get_or_init(|| Arc::new(DescriptorIndex::of(&shared.registry)))
}

/// The names `/protobufs` lists: services, then messages and enums, sorted.
pub(super) fn names(shared: &Shared) -> Vec<String> {
    let pool = index(shared).pool();
    let mut services: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
    let mut types: Vec<String> = pool
        .all_messages()
        .filter(|m| !m.is_map_entry() && !m.full_name().starts_with("google.protobuf."))
        .map(|m| m.full_name().to_owned())
        .chain(pool.all_enums().map(|e| e.full_name().to_owned()))
        .filter(|n| !n.starts_with("google.protobuf."))
        .collect();
    services.sort();
    types.sort();
    services.extend(types);
    services
}

/// `name`'s definition as `.proto` source, if the hosted services' descriptors have it.
pub(super) fn definition(shared: &Shared, name: &str) -> Option<String> {
    crate::proto_source::definition(index(shared).pool(), name)
}
