//! Naming schemes of one's own (`naming::register_scheme`, `naming::register_registrar`),
//! end to end: a server registers itself in an in-process registry under `inhouse://`, a
//! channel finds it there by URL, and stopping the server takes it out.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use brisk::naming::{self, BoxFuture, NamingService, Registration, ServerNode};
use brisk::{errno, Channel, Server, Status};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::Echo;

/// The in-house registry: addresses by service name.
static REGISTRY: LazyLock<Mutex<BTreeMap<String, Vec<String>>>> = LazyLock::new(Default::default);

fn listed(name: &str) -> Vec<String> {
    REGISTRY
        .lock()
        .unwrap()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

/// `inhouse://name`: the registry's addresses for `name`, polled every 50 ms.
#[derive(Debug)]
struct InHouse {
    name: String,
    last: Option<Vec<ServerNode>>,
}

impl NamingService for InHouse {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(async move {
            loop {
                let nodes: Vec<ServerNode> = listed(&self.name)
                    .iter()
                    .map(|address| ServerNode::new(address.parse().unwrap()))
                    .collect();
                if self.last.as_ref() != Some(&nodes) {
                    self.last = Some(nodes.clone());
                    return Ok(nodes);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }
}

/// One address under one name, until deregistered.
#[derive(Debug)]
struct Entry {
    name: String,
    address: String,
}

impl Registration for Entry {
    fn name(&self) -> String {
        format!("{} in {}", self.address, self.name)
    }

    fn deregister(self: Box<Self>) -> BoxFuture<'static, Result<(), Status>> {
        Box::pin(async move {
            let mut registry = REGISTRY.lock().unwrap();
            if let Some(addresses) = registry.get_mut(&self.name) {
                addresses.retain(|address| *address != self.address);
            }
            Ok(())
        })
    }
}

fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        naming::register_scheme(
            "inhouse",
            Arc::new(|name: &str| {
                Ok(Box::new(InHouse {
                    name: name.to_owned(),
                    last: None,
                }))
            }),
        )
        .expect("a new scheme");
        naming::register_registrar(
            "inhouse",
            Arc::new(|url: &str, address: &str, _ttl: Duration| {
                let name = url.trim_start_matches("inhouse://").to_owned();
                let address = address.to_owned();
                Box::pin(async move {
                    if name.is_empty() {
                        return Err(Status::new(errno::EINVAL, "inhouse:// needs a name"));
                    }
                    REGISTRY
                        .lock()
                        .unwrap()
                        .entry(name.clone())
                        .or_default()
                        .push(address.clone());
                    Ok(Box::new(Entry { name, address }) as Box<dyn Registration>)
                })
            }),
        )
        .expect("a new registrar");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheme_of_ones_own_registers_finds_and_deregisters() {
    install();
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .register("inhouse://echo")
        .start("127.0.0.1:0")
        .await
        .expect("registered in-house");
    let address = server.local_addr().to_string();
    assert_eq!(listed("echo"), [address]);

    // Scheme names match without regard to case, as URL schemes do.
    let channel = Channel::builder()
        .connect_cluster("InHouse://echo", "rr")
        .await
        .expect("an inhouse:// channel");
    let reply = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "found in-house".into(),
        })
        .await
        .expect("a call through the in-house registry");
    assert_eq!(reply.message, "found in-house");

    server.stop().await;
    assert_eq!(listed("echo"), Vec::<String>::new(), "deregistered on stop");
    server.join().await;

    // Registrars see the scheme in lower case, however it was written.
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .register("INHOUSE://upper")
        .start("127.0.0.1:0")
        .await
        .expect("registered in-house");
    assert_eq!(listed("upper"), [server.local_addr().to_string()]);
    server.shutdown().await;
    assert_eq!(listed("upper"), Vec::<String>::new());

    // The registrar's own refusal fails the start, with its code.
    let err = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .register("inhouse://")
        .start("127.0.0.1:0")
        .await
        .expect_err("no name");
    assert_eq!(err.code(), errno::EINVAL, "{err}");
}

#[test]
fn built_in_and_taken_schemes_are_refused() {
    install();
    for scheme in ["list", "etcd", "zk", "inhouse", "INHOUSE"] {
        let err =
            naming::register_scheme(scheme, Arc::new(|_: &str| unreachable!())).expect_err(scheme);
        assert_eq!(err.code(), errno::EINVAL, "{scheme}: {err}");
    }
    for scheme in ["etcd", "zk", "inhouse"] {
        let err =
            naming::register_registrar(scheme, Arc::new(|_: &str, _: &str, _| unreachable!()))
                .expect_err(scheme);
        assert_eq!(err.code(), errno::EINVAL, "{scheme}: {err}");
    }
    // Unknown schemes name the known ones.
    let err = naming::from_url("consul://127.0.0.1:8500/echo").expect_err("unknown");
    assert_eq!(err.code(), errno::EINVAL);
    assert!(err.message().contains("inhouse"), "{err}");
    assert!(err.message().contains("etcd"), "{err}");
}
