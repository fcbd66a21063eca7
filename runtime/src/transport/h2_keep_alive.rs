//! HTTP/2 keep-alive, for both sides: PING the peer every so often, and give the connection
//! up when an answer does not come in time (a peer gone without a FIN, a half-open NAT path).

use std::time::Duration;

/// How long a PING may wait for its answer, unless told (hyper's default).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a connection checks its peer is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeepAlive {
    /// A PING every this long.
    pub(crate) interval: Duration,
    /// The longest the PONG may take.
    pub(crate) timeout: Duration,
}

/// Why [`watch`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Watched {
    /// A PING went unanswered for the timeout: the peer is gone.
    Unanswered,
    /// The connection could not send a PING: it is ending anyway.
    Ended,
}

/// PINGs the peer every `keep_alive.interval` through `ping_pong` (the connection must be
/// driven beside it) until one goes unanswered or cannot be sent.
pub(crate) async fn watch(mut ping_pong: h2::PingPong, keep_alive: KeepAlive) -> Watched {
    loop {
        tokio::time::sleep(keep_alive.interval).await;
        match tokio::time::timeout(keep_alive.timeout, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) => return Watched::Ended,
            Err(_) => return Watched::Unanswered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_ALIVE: KeepAlive = KeepAlive {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    };

    /// A client connection whose server answers PINGs only while `answering`.
    async fn connection(answering: bool) -> h2::PingPong {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut server = h2::server::handshake(server_io).await.expect("handshake");
            if answering {
                while server.accept().await.is_some() {}
            } else {
                std::future::pending::<()>().await;
            }
        });
        let (_sender, mut client) = h2::client::handshake(client_io).await.expect("handshake");
        let ping_pong = client.ping_pong().expect("the first ping_pong");
        tokio::spawn(async move {
            let _sender = _sender;
            let _ = client.await;
        });
        ping_pong
    }

    #[tokio::test(start_paused = true)]
    async fn answered_pings_keep_watching() {
        let ping_pong = connection(true).await;
        let watching = tokio::time::timeout(KEEP_ALIVE.interval * 20, watch(ping_pong, KEEP_ALIVE));
        assert!(watching.await.is_err(), "still watching after 20 pings");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_ping_ends_the_watch_after_its_timeout() {
        let ping_pong = connection(false).await;
        let started = tokio::time::Instant::now();
        assert_eq!(watch(ping_pong, KEEP_ALIVE).await, Watched::Unanswered);
        assert_eq!(started.elapsed(), KEEP_ALIVE.interval + KEEP_ALIVE.timeout);
    }
}
