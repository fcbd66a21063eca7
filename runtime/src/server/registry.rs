//! Services by name, and their methods by name, for dispatch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{MessageSchema, Service};
use crate::limiter::{ConcurrencyLimiter, MaxConcurrency};
use crate::metrics::CallStatus;
use crate::protocol::TraceIds;
use crate::rpcz::{self, ServerCall, Span};
use crate::{errno, Error, Status};

struct Entry {
    service: Arc<dyn Service>,
    methods: HashMap<&'static str, usize>,
    bodies: HttpBodies,
    /// Each method's settings, by index.
    settings: Box<[Arc<MethodSettings>]>,
}

/// What a server was told about one method — its concurrency limiter (brpc's
/// `MaxConcurrencyOf`) and whether its handler blocks — and its figures.
#[derive(Default)]
pub(crate) struct MethodSettings {
    /// Calls, errors, latency and the requests running now.
    status: Arc<CallStatus>,
    /// `None`: no limit.
    limiter: RwLock<Option<Arc<dyn ConcurrencyLimiter>>>,
    /// Its handlers run on the blocking pool.
    blocking: AtomicBool,
}

impl MethodSettings {
    fn limiter(&self) -> Option<Arc<dyn ConcurrencyLimiter>> {
        self.limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How a request may run, once admitted by its method.
#[derive(Default)]
pub(crate) struct Admitted {
    /// Its place among the method's requests, held until it is answered.
    pub(crate) guard: Option<MethodGuard>,
    /// Whether its handler runs on the blocking pool.
    pub(crate) blocking: bool,
    /// Its rpcz span, when it is traced (the guard holds it too, and ends it).
    pub(crate) span: Option<Arc<Span>>,
}

/// What rpcz is told of a request as it arrives.
pub(crate) struct Arrival {
    /// The trace ids the caller sent, if it traces the call.
    pub(crate) upstream: Option<TraceIds>,
    /// The protocol it came over.
    pub(crate) protocol: &'static str,
    /// The client.
    pub(crate) remote: SocketAddr,
    /// The client's log id (0 when none).
    pub(crate) log_id: i64,
    /// Bytes of its message and attachment.
    pub(crate) request_size: usize,
}

/// A request counted among its method's running ones until dropped, which records how it was
/// answered and how long it took, in the method's figures and for its limiter.
pub(crate) struct MethodGuard {
    settings: Arc<MethodSettings>,
    limiter: Option<Arc<dyn ConcurrencyLimiter>>,
    admitted: Instant,
    /// How it was answered; a request dropped before it was (its caller gone, its deadline
    /// passed) counts as cancelled.
    code: i32,
    /// Its rpcz span, ended with the request.
    span: Option<Arc<Span>>,
}

impl MethodGuard {
    /// Records how the request was answered: 0, or its error code.
    pub(crate) fn answered(&mut self, code: i32) {
        self.code = code;
    }

    /// Records the size of the response's message and attachment (the method's
    /// `response_bytes`, and its rpcz span's).
    pub(crate) fn response_size(&self, size: usize) {
        self.settings.status.response_bytes.add(size as u64);
        if let Some(span) = &self.span {
            span.set_response_size(size);
        }
    }
}

impl Drop for MethodGuard {
    fn drop(&mut self) {
        let status = &self.settings.status;
        status.concurrency.fetch_sub(1, Ordering::Relaxed);
        let latency = self.admitted.elapsed();
        status.on_responded(self.code, latency);
        if let Some(limiter) = &self.limiter {
            limiter.on_responded(self.code, latency);
        }
        if let Some(span) = self.span.take() {
            rpcz::finish(span, self.code, "replied");
        }
    }
}

/// Records `result`'s code in the method guard, if the request has one.
pub(crate) fn record_answer<T>(guard: &mut Option<MethodGuard>, result: &Result<T, Status>) {
    if let Some(guard) = guard {
        guard.answered(
            result
                .as_ref()
                .map_or_else(|status| error_code(status.code()), |_| 0),
        );
    }
}

/// The code an error is counted under: a handler's error with code 0 or below is answered
/// EINTERNAL, and counted so.
fn error_code(code: i32) -> i32 {
    if code > 0 {
        code
    } else {
        errno::EINTERNAL
    }
}

/// How HTTP carries a service's messages, decided once when the server starts.
enum HttpBodies {
    /// Protobuf bodies only.
    Opaque,
    /// The service's messages are JSON already: bodies pass through.
    Json,
    /// Protobuf messages, mapped to and from JSON by their descriptors.
    #[cfg(feature = "json")]
    Described(crate::json::ServiceJson),
}

/// How an HTTP request's JSON body becomes a method's request (and its response JSON).
#[derive(Clone, Copy, Debug)]
pub(crate) enum JsonBodies<'a> {
    /// No JSON mapping: only `application/proto` bodies are served.
    Unsupported,
    /// The method takes and returns JSON itself.
    PassThrough,
    /// Transcoded by the method's descriptors.
    #[cfg(feature = "json")]
    Transcoded(&'a crate::json::MethodJson),
    #[doc(hidden)]
    #[cfg(not(feature = "json"))]
    _Unused(std::marker::PhantomData<&'a ()>),
}

/// A method found for a request: its service, index and JSON mapping.
pub(crate) struct Found<'a> {
    pub(crate) service: &'a Arc<dyn Service>,
    pub(crate) method: usize,
    pub(crate) json: JsonBodies<'a>,
}

impl HttpBodies {
    /// Decodes the service's schema; a descriptor set that does not decode is logged and the
    /// service served with protobuf bodies only.
    fn new(service: &dyn Service) -> HttpBodies {
        match service.schema() {
            MessageSchema::Opaque => HttpBodies::Opaque,
            MessageSchema::Json => HttpBodies::Json,
            #[cfg(feature = "json")]
            MessageSchema::Protobuf {
                file_descriptor_set,
            } => match crate::json::ServiceJson::new(
                file_descriptor_set,
                service.full_name(),
                service.method_names(),
            ) {
                Ok(described) => HttpBodies::Described(described),
                Err(e) => {
                    tracing::warn!(
                        service = service.full_name(),
                        "serving protobuf bodies only over HTTP: {e}"
                    );
                    HttpBodies::Opaque
                }
            },
            #[cfg(not(feature = "json"))]
            MessageSchema::Protobuf { .. } => HttpBodies::Opaque,
        }
    }

    fn for_method(&self, method: usize) -> JsonBodies<'_> {
        let _ = method;
        match self {
            HttpBodies::Opaque => JsonBodies::Unsupported,
            HttpBodies::Json => JsonBodies::PassThrough,
            #[cfg(feature = "json")]
            HttpBodies::Described(described) => match described.method(method) {
                Some(mapping) => JsonBodies::Transcoded(mapping),
                None => JsonBodies::Unsupported,
            },
        }
    }
}

/// The services a server hosts, found by full (`example.EchoService`) or short
/// (`EchoService`) name.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// Whether any method was ever given a limit or made blocking: until one is, requests skip
    /// the lookup.
    special: AtomicBool,
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
            // The nshead service is reached by the nshead codec alone, by its full name.
            if short != full && full != crate::protocol::nshead::NSHEAD_SERVICE {
                short_names.entry(short).or_default().push(index);
            }
            let methods = service
                .method_names()
                .iter()
                .enumerate()
                .map(|(i, name)| (*name, i))
                .collect();
            let bodies = HttpBodies::new(&*service);
            let settings = service
                .method_names()
                .iter()
                .map(|_| Arc::default())
                .collect();
            registry.entries.push(Entry {
                service,
                methods,
                bodies,
                settings,
            });
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

    /// The service for a request that numbers its method, if it has method `index`.
    pub(crate) fn find_index(
        &self,
        service: &str,
        index: usize,
    ) -> Option<(&Arc<dyn Service>, usize)> {
        let entry = &self.entries[*self.by_name.get(service)?];
        (index < entry.service.method_names().len()).then_some((&entry.service, index))
    }

    /// The service, method index and JSON mapping for an HTTP request.
    pub(crate) fn find_for_http(&self, service: &str, method: &str) -> Option<Found<'_>> {
        let entry = &self.entries[*self.by_name.get(service)?];
        let index = *entry.methods.get(method)?;
        Some(Found {
            service: &entry.service,
            method: index,
            json: entry.bodies.for_method(index),
        })
    }

    /// Admits a request of `service`'s method `method`, whose caller gave it `timeout`: counts
    /// it in the method's figures, starts its rpcz span if it is traced, asks the method's
    /// concurrency limiter if it has one (ELIMIT in brpc's words when it refuses; the count
    /// includes this request, as brpc's does) and says whether its handler blocks.
    pub(crate) fn enter_method(
        &self,
        service: &dyn Service,
        method: usize,
        timeout: Option<Duration>,
        arrival: Arrival,
    ) -> Result<Admitted, Status> {
        // The service is one of the entries' own: found by address, with no hashing.
        let Some(settings) = self
            .entries
            .iter()
            .find(|e| std::ptr::addr_eq(Arc::as_ptr(&e.service), service))
            .and_then(|entry| entry.settings.get(method))
        else {
            return Ok(Admitted::default());
        };
        let special = self.special.load(Ordering::Relaxed);
        let blocking = special && settings.blocking.load(Ordering::Relaxed);
        let limiter = if special { settings.limiter() } else { None };
        let count = settings.status.concurrency.fetch_add(1, Ordering::Relaxed) + 1;
        settings
            .status
            .request_bytes
            .add(arrival.request_size as u64);
        let name = service
            .method_names()
            .get(method)
            .copied()
            .unwrap_or_default();
        let span = Span::server(ServerCall {
            upstream: arrival.upstream,
            service: service.full_name(),
            method: name,
            protocol: arrival.protocol,
            remote: arrival.remote,
            log_id: arrival.log_id,
            request_size: arrival.request_size,
        });
        // Counted from here: a limiter that panics still gives the place back.
        let mut guard = MethodGuard {
            settings: Arc::clone(settings),
            limiter,
            admitted: Instant::now(),
            code: errno::ECANCELED,
            span: span.clone(),
        };
        if let Some(limiter) = &guard.limiter {
            if !limiter.on_requested(count, timeout) {
                // The limiter hears of its refusal too, as brpc's does.
                guard.answered(errno::ELIMIT);
                return Err(Status::new(
                    errno::ELIMIT,
                    format!(
                        "Rejected by {}.{name}'s ConcurrencyLimiter, concurrency={count}",
                        service.full_name()
                    ),
                ));
            }
        }
        Ok(Admitted {
            guard: Some(guard),
            blocking,
            span,
        })
    }

    /// Exposes every method's figures under brpc's names for a server on `port`
    /// (`rpc_server_8000_example_echo_service_echo_count`, ...), for as long as the returned
    /// handles live.
    pub(crate) fn expose_status(&self, port: u16) -> Vec<crate::metrics::Exposed> {
        let mut exposed = Vec::new();
        for entry in &self.entries {
            for (name, settings) in entry.service.method_names().iter().zip(&*entry.settings) {
                let full = format!("{}.{name}", entry.service.full_name());
                let prefix = format!(
                    "rpc_server_{port}_{}",
                    crate::metrics::to_underscored_name(&full)
                );
                exposed.extend(settings.status.expose(&prefix));
            }
        }
        exposed
    }

    /// Every method's figures: (service, method, figures), in the order services were added.
    pub(crate) fn statuses(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, &CallStatus)> + '_ {
        self.entries.iter().flat_map(|entry| {
            let service = entry.service.full_name();
            entry
                .service
                .method_names()
                .iter()
                .zip(&*entry.settings)
                .map(move |(method, settings)| (service, *method, &*settings.status))
        })
    }

    /// The settings of the method named `full_method` (`example.EchoService.Echo`); EINVAL
    /// `Fail to find method=...` when no hosted service has it.
    fn settings_of(&self, full_method: &str) -> Result<&MethodSettings, Error> {
        full_method
            .rsplit_once('.')
            .and_then(|(service, method)| {
                let entry = &self.entries[*self.by_name.get(service)?];
                entry.settings.get(*entry.methods.get(method)?)
            })
            .map(|settings| &**settings)
            .ok_or_else(|| Error::invalid(format!("Fail to find method={full_method}")))
    }

    /// Gives the method named `full_method` a new limiter for `max` (none when unlimited).
    pub(crate) fn set_max_concurrency_of(
        &self,
        full_method: &str,
        max: &MaxConcurrency,
    ) -> Result<(), Error> {
        let settings = self.settings_of(full_method)?;
        let limiter = max.limiter();
        let limited = limiter.is_some();
        *settings.limiter.write().unwrap_or_else(|e| e.into_inner()) = limiter;
        if limited {
            self.special.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Runs the handlers of `name` on the blocking pool: a method (`example.EchoService.Echo`)
    /// or every method of a service (`example.EchoService`); EINVAL when the server hosts
    /// neither.
    pub(crate) fn set_blocking(&self, name: &str) -> Result<(), Error> {
        let settings: Vec<&MethodSettings> = match self.by_name.get(name) {
            Some(&entry) if self.entries[entry].service.full_name() == name => {
                self.entries[entry].settings.iter().map(|s| &**s).collect()
            }
            _ => vec![self
                .settings_of(name)
                .map_err(|_| Error::invalid(format!("Fail to find service or method={name}")))?],
        };
        for settings in settings {
            settings.blocking.store(true, Ordering::Relaxed);
        }
        self.special.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The limit the method named `full_method` has now (0: none); for an adaptive limiter,
    /// its latest.
    pub(crate) fn max_concurrency_of(&self, full_method: &str) -> Result<usize, Error> {
        Ok(self
            .settings_of(full_method)?
            .limiter()
            .map_or(0, |limiter| limiter.max_concurrency()))
    }

    /// Whether a service is registered under `name` (full or short).
    pub(crate) fn has_service(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The services, in the order they were added.
    #[cfg(feature = "json")]
    pub(crate) fn services(&self) -> impl Iterator<Item = &Arc<dyn Service>> + '_ {
        self.entries.iter().map(|e| &e.service)
    }

    /// Full names of the services, in the order they were added.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.service.full_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{unknown_method, ServerContext, ServiceFuture};
    use bytes::Bytes;

    struct Fake(&'static str, MessageSchema);

    impl Service for Fake {
        fn full_name(&self) -> &'static str {
            self.0
        }
        fn method_names(&self) -> &'static [&'static str] {
            &["Get"]
        }
        fn call(&self, method: usize, context: ServerContext, _request: Bytes) -> ServiceFuture {
            unknown_method(context, method)
        }
        fn schema(&self) -> MessageSchema {
            self.1
        }
    }

    #[test]
    fn http_lookups_carry_each_services_json_mapping() {
        let registry = Registry::new(vec![
            Arc::new(Fake("a.Opaque", MessageSchema::Opaque)),
            Arc::new(Fake("a.Json", MessageSchema::Json)),
            Arc::new(Fake(
                "a.Broken",
                MessageSchema::Protobuf {
                    file_descriptor_set: b"\xff\xff not a descriptor set",
                },
            )),
        ])
        .unwrap();
        let json = |service: &str| registry.find_for_http(service, "Get").map(|f| f.json);
        assert!(matches!(json("a.Opaque"), Some(JsonBodies::Unsupported)));
        assert!(matches!(json("Json"), Some(JsonBodies::PassThrough)));
        // A descriptor set that does not decode is served as opaque.
        assert!(matches!(json("a.Broken"), Some(JsonBodies::Unsupported)));
        assert!(registry.find_for_http("a.Json", "Put").is_none());
        assert!(registry.find_for_http("a.Nope", "Get").is_none());
        let found = registry.find_for_http("a.Json", "Get").unwrap();
        assert_eq!((found.service.full_name(), found.method), ("a.Json", 0));
    }
}
