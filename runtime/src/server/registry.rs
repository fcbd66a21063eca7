//! Services by name, and their methods by name, for dispatch.

use std::collections::HashMap;
use std::sync::Arc;

use super::Service;
use crate::{errno, Status};

struct Entry {
    service: Arc<dyn Service>,
    methods: HashMap<&'static str, usize>,
}

/// The services a server hosts, found by full (`example.EchoService`) or short
/// (`EchoService`) name.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.service.full_name()))
            .finish()
    }
}

impl Registry {
    /// Builds the registry; two services with one full name is an error. A short name shared by
    /// services of different packages is left out (callers must use the full name).
    pub(crate) fn new(services: Vec<Arc<dyn Service>>) -> Result<Registry, Status> {
        let mut registry = Registry::default();
        let mut short_names: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for service in services {
            let full = service.full_name();
            if registry.by_name.contains_key(full) {
                return Err(Status::new(
                    errno::EINVAL,
                    format!("service `{full}` added twice"),
                ));
            }
            let index = registry.entries.len();
            registry.by_name.insert(full.to_owned(), index);
            let short = full.rsplit('.').next().unwrap_or(full);
            if short != full {
                short_names.entry(short).or_default().push(index);
            }
            let methods = service
                .method_names()
                .iter()
                .enumerate()
                .map(|(i, name)| (*name, i))
                .collect();
            registry.entries.push(Entry { service, methods });
        }
        for (short, owners) in short_names {
            if let [only] = owners[..] {
                registry.by_name.entry(short.to_owned()).or_insert(only);
            } else {
                tracing::warn!(
                    short,
                    "several services share this short name; use full names"
                );
            }
        }
        Ok(registry)
    }

    /// The service and method index for a request.
    pub(crate) fn find(&self, service: &str, method: &str) -> Option<(&Arc<dyn Service>, usize)> {
        let entry = &self.entries[*self.by_name.get(service)?];
        let index = *entry.methods.get(method)?;
        Some((&entry.service, index))
    }

    /// Whether a service is registered under `name` (full or short).
    pub(crate) fn has_service(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Full names of the services, in the order they were added.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.service.full_name())
    }
}
