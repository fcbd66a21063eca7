//! etcd's v3 HTTP/JSON gateway (served at `/v3/...` on the client port since etcd 3.4): one
//! endpoint, plain HTTP, each request on a connection of its own. What the `etcd://` naming
//! service ([`super::EtcdNamingService`]) and server registration
//! ([`super::EtcdRegistration`]) send. Keys and values travel base64-encoded.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::list::split_entry;
use crate::{errno, Status};

/// How long connecting to etcd may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a whole request, or setting up a watch (up to etcd's confirmation that the watch
/// is created), may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response, or watch message, accepted.
pub(super) const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// One etcd endpoint, and the URL that named it (for messages).
#[derive(Debug, Clone)]
pub(super) struct Gateway {
    /// The URL, for messages: `etcd://host:port/prefix`.
    pub(super) url: String,
    /// etcd's client endpoint, `host:port` (also the `Host` header).
    pub(super) authority: String,
}

impl Gateway {
    /// Sends `body` as a POST to `path` on a new connection; the response body once the
    /// status is 200, and the task driving the connection.
    pub(super) async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(Incoming, ConnTask), Status> {
        let addr = super::resolve(&self.authority)
            .await
            .map_err(|e| Status::new(e.code(), format!("{}: {}", self.url, e.message())))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                Status::new(
                    errno::ETIMEDOUT,
                    format!(
                        "{}: connecting to {addr} timed out after {CONNECT_TIMEOUT:?}",
                        self.url
                    ),
                )
            })?
            .map_err(|e| self.io_error(addr, e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn): (SendRequest<Full<Bytes>>, _) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| self.http_error(addr, e))?;
        let conn = ConnTask(tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "etcd connection ended");
            }
        }));
        let request = Request::post(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Status::internal(format!("{}: building a request: {e}", self.url)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.http_error(addr, e))?;
        let status = response.status();
        if status != StatusCode::OK {
            let text = match Limited::new(response.into_body(), 4096).collect().await {
                Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            return Err(Status::new(
                errno::EHTTP,
                format!("{}: {path} answered {status}: {}", self.url, text.trim()),
            ));
        }
        Ok((response.into_body(), conn))
    }

    /// POSTs `body` to `path` and reads the whole JSON answer, within [`REQUEST_TIMEOUT`].
    pub(super) async fn call(&self, path: &str, body: &Value) -> Result<Value, Status> {
        let exchange = async {
            let (body, _conn) = self.post(path, body).await?;
            let body = Limited::new(body, MAX_MESSAGE_SIZE)
                .collect()
                .await
                .map_err(|e| {
                    Status::new(
                        errno::EFAILEDSOCKET,
                        format!("{}: reading the answer to {path} failed: {e}", self.url),
                    )
                })?
                .to_bytes();
            serde_json::from_slice(&body)
                .map_err(|e| self.bad_response(format!("the answer to {path} is not JSON: {e}")))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.timed_out(path))?
    }

    pub(super) fn bad_response(&self, what: impl fmt::Display) -> Status {
        Status::new(errno::ERESPONSE, format!("{}: {what}", self.url))
    }

    pub(super) fn timed_out(&self, what: &str) -> Status {
        Status::new(
            errno::ETIMEDOUT,
            format!("{}: {what} timed out after {REQUEST_TIMEOUT:?}", self.url),
        )
    }

    fn io_error(&self, addr: SocketAddr, e: io::Error) -> Status {
        let code = match e.kind() {
            io::ErrorKind::ConnectionRefused => errno::ECONNREFUSED,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => errno::ECONNRESET,
            io::ErrorKind::TimedOut => errno::ETIMEDOUT,
            _ => errno::EFAILEDSOCKET,
        };
        Status::new(
            code,
            format!("{}: cannot connect to etcd at {addr}: {e}", self.url),
        )
    }

    fn http_error(&self, addr: SocketAddr, e: hyper::Error) -> Status {
        Status::new(
            errno::EFAILEDSOCKET,
            format!(
                "{}: HTTP exchange with etcd at {addr} failed: {e}",
                self.url
            ),
        )
    }
}

/// The task driving an HTTP connection, stopped when dropped.
#[derive(Debug)]
pub(super) struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Splits what follows `etcd://` into the endpoint (`host:port`) and the key prefix
/// (starting with `/`, without trailing slashes). The error is the reason the URL is bad.
pub(super) fn parse_url(rest: &str) -> Result<(String, String), String> {
    let Some((authority, path)) = rest.split_once('/') else {
        return Err("no key prefix (expected etcd://host:port/prefix)".to_owned());
    };
    if authority.is_empty() {
        return Err("no etcd endpoint (expected etcd://host:port/prefix)".to_owned());
    }
    if authority.contains(',') {
        return Err("only one etcd endpoint is supported".to_owned());
    }
    if authority.contains(char::is_whitespace) || authority.contains('@') {
        return Err(format!("`{authority}` is not host:port"));
    }
    split_entry(authority)?;
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err("empty key prefix (expected etcd://host:port/prefix)".to_owned());
    }
    Ok((authority.to_owned(), format!("/{path}")))
}

/// The end of the range of keys starting with `key` (etcd's `GetPrefixRangeEnd`): `key` with
/// its last byte below 0xff incremented and what follows it dropped; `[0]` (every key) when
/// all bytes are 0xff.
pub(super) fn range_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}
