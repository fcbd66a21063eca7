//! A channel's figures for each method it calls — calls answered, errors by code, latency —
//! exposed as `rpc_client_<target>_<method>_count`, `_error`, `_latency`, ... Channels to the
//! same target share them, as they share connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::metrics::{to_underscored_name, CallStatus, Exposed};
use crate::MethodDescriptor;

/// One method's figures as channels to one target see them.
pub(crate) struct ClientMethod {
    service: String,
    method: String,
    status: Arc<CallStatus>,
    _exposed: Vec<Exposed>,
}

/// Every method's figures a process keeps, by name prefix, while some channel uses them.
static SHARED: LazyLock<Mutex<HashMap<String, Weak<ClientMethod>>>> =
    LazyLock::new(Default::default);

/// How one call went, as a channel's figures count it.
pub(crate) struct CallRecord {
    /// 0, or the call's error code.
    pub(crate) code: i32,
    pub(crate) latency: Duration,
    /// Bytes of the request's message and attachment (0 if it was never encoded).
    pub(crate) request_bytes: usize,
    /// Bytes of the response's (0 without one).
    pub(crate) response_bytes: usize,
}

impl ClientMethod {
    fn record(&self, call: &CallRecord) {
        self.status.on_responded(call.code, call.latency);
        self.status.request_bytes.add(call.request_bytes as u64);
        self.status.response_bytes.add(call.response_bytes as u64);
    }
}

/// The figures of the methods one channel has called.
pub(crate) struct ChannelFigures {
    /// `rpc_client_<target>`.
    prefix: String,
    /// Looked up on every call without a lock; copied when a method is first called.
    methods: ArcSwap<Vec<Arc<ClientMethod>>>,
    adding: Mutex<()>,
}

impl std::fmt::Debug for ChannelFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelFigures")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ChannelFigures {
    /// Figures of a channel to `target` (an address or a naming service's URL).
    pub(crate) fn new(target: &str) -> Self {
        let target = to_underscored_name(target);
        ChannelFigures {
            prefix: format!("rpc_client_{}", target.trim_start_matches('_')),
            methods: ArcSwap::from_pointee(Vec::new()),
            adding: Mutex::new(()),
        }
    }

    /// Records a call of `method`: how it ended, how long it took, the bytes it moved.
    pub(crate) fn record(&self, method: &MethodDescriptor, call: &CallRecord) {
        {
            let methods = self.methods.load();
            if let Some(known) = find(&methods, method) {
                known.record(call);
                return;
            }
        }
        self.add(method).record(call);
    }

    /// The figures of a method this channel calls for the first time: another channel's to
    /// the same target, or new ones.
    fn add(&self, method: &MethodDescriptor) -> Arc<ClientMethod> {
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = find(&self.methods.load(), method) {
            return Arc::clone(known);
        }
        let prefix = format!(
            "{}_{}",
            self.prefix,
            to_underscored_name(&format!("{}.{}", method.service(), method.method()))
        );
        let shared = {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            shared.retain(|_, figures| figures.strong_count() > 0);
            match shared.get(&prefix).and_then(Weak::upgrade) {
                Some(figures) => figures,
                None => {
                    let status = Arc::new(CallStatus::default());
                    let figures = Arc::new(ClientMethod {
                        service: method.service().to_owned(),
                        method: method.method().to_owned(),
                        _exposed: status.expose(&prefix),
                        status,
                    });
                    shared.insert(prefix, Arc::downgrade(&figures));
                    figures
                }
            }
        };
        let mut methods = Vec::clone(&self.methods.load());
        methods.push(Arc::clone(&shared));
        self.methods.store(Arc::new(methods));
        shared
    }
}

fn find<'m>(
    methods: &'m [Arc<ClientMethod>],
    method: &MethodDescriptor,
) -> Option<&'m Arc<ClientMethod>> {
    methods
        .iter()
        .find(|m| m.method == method.method() && m.service == method.service())
}

/// A cluster channel's figures for each server it called, each under the server's address,
/// as a channel to that server alone keeps them (`rpc_client_127_0_0_1_8000_<method>_...`):
/// the calls this process made to that server, whichever channel made them.
#[derive(Debug, Default)]
pub(crate) struct ServerFigures {
    servers: ArcSwap<Vec<(SocketAddr, Arc<ChannelFigures>)>>,
    adding: Mutex<()>,
}

impl ServerFigures {
    /// Records a call of `method` that `server` answered (or failed). The first call to a
    /// server the channel has not called before also lets go of the figures of servers no
    /// longer in the cluster (`in_cluster` lists it), so a cluster whose servers come and go
    /// does not keep them all.
    pub(crate) fn record(
        &self,
        server: SocketAddr,
        method: &MethodDescriptor,
        call: &CallRecord,
        in_cluster: impl FnOnce() -> Vec<SocketAddr>,
    ) {
        let known = self
            .servers
            .load()
            .iter()
            .find(|(addr, _)| *addr == server)
            .map(|(_, figures)| Arc::clone(figures));
        let figures = known.unwrap_or_else(|| self.add(server, in_cluster()));
        figures.record(method, call);
    }

    fn add(&self, server: SocketAddr, in_cluster: Vec<SocketAddr>) -> Arc<ChannelFigures> {
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let servers = self.servers.load();
        if let Some((_, known)) = servers.iter().find(|(addr, _)| *addr == server) {
            return Arc::clone(known);
        }
        let figures = Arc::new(ChannelFigures::new(&server.to_string()));
        let mut kept: Vec<(SocketAddr, Arc<ChannelFigures>)> = servers
            .iter()
            .filter(|(addr, _)| in_cluster.contains(addr))
            .cloned()
            .collect();
        kept.push((server, Arc::clone(&figures)));
        self.servers.store(Arc::new(kept));
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn channels_to_one_target_share_each_methods_figures() {
        let echo = MethodDescriptor::new("figures.test.EchoService", "Echo");
        let a = ChannelFigures::new("127.0.0.1:18000");
        let b = ChannelFigures::new("127.0.0.1:18000");
        let call = |code, latency| CallRecord {
            code,
            latency,
            request_bytes: 10,
            response_bytes: 20,
        };
        a.record(&echo, &call(0, Duration::from_micros(100)));
        b.record(&echo, &call(0, Duration::from_micros(300)));
        b.record(
            &echo,
            &call(errno::ERPCTIMEDOUT, Duration::from_millis(500)),
        );
        let name = "rpc_client_127_0_0_1_18000_figures_test_echo_service_echo";
        let shown = crate::metrics::describe(&format!(
            "{name}_count;{name}_error;{name}_request_bytes;{name}_response_bytes"
        ));
        assert_eq!(
            shown,
            vec![
                (format!("{name}_count"), "2".to_owned()),
                (format!("{name}_error"), "1".to_owned()),
                (format!("{name}_request_bytes"), "30".to_owned()),
                (format!("{name}_response_bytes"), "60".to_owned()),
            ]
        );
        drop((a, b));
        assert!(
            crate::metrics::describe(&format!("{name}_*")).is_empty(),
            "gone with the channels"
        );
    }

    #[test]
    fn a_clusters_server_figures_go_when_the_server_leaves() {
        let echo = MethodDescriptor::new("figures.test.ClusterService", "Echo");
        let servers = ServerFigures::default();
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:18101".parse().unwrap(),
            "127.0.0.1:18102".parse().unwrap(),
        );
        let call = CallRecord {
            code: 0,
            latency: Duration::from_micros(10),
            request_bytes: 1,
            response_bytes: 1,
        };
        servers.record(a, &echo, &call, || vec![a]);
        let name = |port: u16| {
            format!("rpc_client_127_0_0_1_{port}_figures_test_cluster_service_echo_count")
        };
        assert_eq!(crate::metrics::describe(&name(18101)).len(), 1);
        // a left the cluster; b is new.
        servers.record(b, &echo, &call, || vec![b]);
        assert!(
            crate::metrics::describe(&name(18101)).is_empty(),
            "a's figures went"
        );
        assert_eq!(crate::metrics::describe(&name(18102)).len(), 1);
    }
}
