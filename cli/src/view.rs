//! `brisk view`, as brpc's `rpc_view`: a server's builtin pages (`/status`, `/vars`, `/rpcz`,
//! `/connections`, `/flags`, ...) on a local port, for a server whose own port a browser
//! cannot reach (behind a firewall, on a host only this one can reach). Every connection to the
//! local port is relayed to the server as it is, so every page, link and switch works as on
//! the server's own port.
//!
//! ```text
//! $ brisk view 10.0.0.7:8000 --listen 127.0.0.1:8888
//! http://127.0.0.1:8888/ shows the builtin pages of 10.0.0.7:8000 (Ctrl-C stops)
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::Failure;

/// How long a relayed connection may take to reach the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `brisk view`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The server, `host:port` (its port, or its `internal_port` when the pages are there).
    pub server: String,
    /// The local address to show the pages on.
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub listen: SocketAddr,
}

/// Relays connections to the local address until `stop` completes. The first line on stdout
/// is the local URL.
pub async fn run(
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    // Fail now, not at the first page, on a server that is not there.
    let probe = connect(&options.server)
        .await
        .map_err(Failure::unreachable)?;
    drop(probe);
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", options.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", options.listen)))?;
    crate::print_line(&format!(
        "http://{local}/ shows the builtin pages of {} (Ctrl-C stops)",
        options.server
    ))?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => {
                let mut browser = match accepted {
                    Ok((browser, _)) => browser,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        eprintln!("brisk view: accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let server = options.server.clone();
                tokio::spawn(async move {
                    match connect(&server).await {
                        Ok(mut upstream) => {
                            let _ = tokio::io::copy_bidirectional(&mut browser, &mut upstream).await;
                        }
                        Err(e) => eprintln!("brisk view: {e}"),
                    }
                });
            }
        }
    }
}

async fn connect(server: &str) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(format!("cannot reach `{server}`: {e}")),
        Err(_) => Err(format!(
            "cannot reach `{server}` within {CONNECT_TIMEOUT:?}"
        )),
    }
}
