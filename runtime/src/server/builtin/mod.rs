//! The server's builtin pages (brpc's builtin services), on its own port over HTTP/1.1 and
//! HTTP/2: `/` lists them, `/status` shows each method, `/vars` every metric, `/brpc_metrics`
//! (and `/metrics`) exports the metrics for Prometheus, `/connections` the open connections,
//! `/rpcz` traced calls, `/flags` the options, `/protobufs` the schemas, `/health` and
//! `/version` answer probes. Browsers get HTML, other clients (curl) plain text, as brpc decides by
//! `User-Agent`; `?console=1` asks for text. They answer `GET` (and `HEAD`) only, are not
//! counted against concurrency limits, and are off with `ServerBuilder::builtin_services(false)`.

mod connections;
mod flags;
#[cfg(feature = "hotspots")]
mod hotspots;
mod html;
mod pages;
#[cfg(feature = "json")]
mod protobufs;
mod rpcz;
mod status;
mod vars;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Response, StatusCode};

use super::body::{full_body, ResponseBody};
use super::state::{Peer, Shared};
use crate::metrics::prometheus;
use pages::PAGES;

/// How a page is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    Html,
}

/// Whether `request`, which came from `peer`, is for a builtin page this server shows there
/// (with an `internal_port`, only there).
pub(super) fn is_builtin(request: &Request<impl Sized>, peer: &Peer, shared: &Shared) -> bool {
    shared.options.builtin_services
        && (shared.internal_addr.is_none() || peer.internal)
        && matches!(*request.method(), Method::GET | Method::HEAD)
        && page_of(request.uri().path()).is_some()
}

/// The page a path names, and what follows it (`/vars/NAME`).
fn page_of(path: &str) -> Option<(&'static str, &str)> {
    let path = path.trim_end_matches('/');
    let (head, rest) = match path.get(1..).and_then(|p| p.split_once('/')) {
        Some((head, rest)) => (head, rest),
        None => (path.get(1..).unwrap_or(""), ""),
    };
    let page = match head {
        "" | "index" => "index",
        "status" => "status",
        "vars" => "vars",
        "brpc_metrics" | "metrics" => "metrics",
        "health" => "health",
        "version" => "version",
        "flags" => "flags",
        "protobufs" => "protobufs",
        "rpcz" => "rpcz",
        "connections" => "connections",
        "hotspots" => "hotspots",
        _ => return None,
    };
    // Only `/vars`, `/flags`, `/protobufs` and `/rpcz` take a tail.
    let tail_ok = match page {
        "vars" | "flags" | "protobufs" => true,
        "rpcz" => matches!(rest, "" | "enable" | "disable"),
        "hotspots" => rest == "cpu",
        _ => rest.is_empty(),
    };
    tail_ok.then_some((page, rest))
}

/// Answers a request [`is_builtin`] accepted.
pub(super) async fn serve(
    request: &Request<impl Sized>,
    shared: &Shared,
) -> Response<ResponseBody> {
    let format = format_of(request);
    let Some((page, rest)) = page_of(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "no such page\n".into());
    };
    let head = *request.method() == Method::HEAD;
    let (content_type, body) = match page {
        "index" => page_body(format, "Brisk", index_text(), index_html()),
        "status" => page_body(format, "Status", status::text(shared), status::html(shared)),
        "connections" => page_body(
            format,
            "Connections",
            connections::text(shared),
            connections::html(shared),
        ),
        "vars" => {
            let filter = percent_decode(rest);
            let vars = vars::text(&filter);
            if vars.is_empty() && !filter.is_empty() && !filter.contains(['*', '$', '?']) {
                return plain(
                    StatusCode::NOT_FOUND,
                    format!("Fail to find any bvar by `{filter}'\n"),
                );
            }
            page_body(format, "Vars", vars, vars::html(&filter))
        }
        "flags" => {
            let name = percent_decode(rest);
            let setvalue = request.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("setvalue="))
                    .map(percent_decode)
            });
            let (status, body) =
                flags::answer(shared, &name, setvalue.as_deref(), format == Format::Html);
            if status != StatusCode::OK || setvalue.is_some() {
                return plain(status, body);
            }
            page_body(format, "Flags", body.clone(), body)
        }
        "protobufs" => match protobufs_page(shared, &percent_decode(rest), format) {
            Ok(body) => body,
            Err((status, text)) => return plain(status, text),
        },
        "rpcz" if !rest.is_empty() => {
            let (status, text) = flags::answer(
                shared,
                "enable_rpcz",
                Some(if rest == "enable" { "true" } else { "false" }),
                false,
            );
            return plain(status, text);
        }
        "rpcz" => {
            let query = percent_decode(request.uri().query().unwrap_or(""));
            match rpcz::Filter::parse(&query) {
                Ok(filter) => page_body(format, "rpcz", rpcz::text(&filter), rpcz::html(&filter)),
                Err(why) => return plain(StatusCode::BAD_REQUEST, format!("{why}\n")),
            }
        }
        "hotspots" => match hotspots_cpu(request.uri().query().unwrap_or("")).await {
            Ok(svg) => (SVG, svg),
            Err((status, text)) => return plain(status, text),
        },
        "metrics" => (prometheus::CONTENT_TYPE, prometheus::render()),
        "health" => {
            let health = shared.health();
            let status = if health.serving {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return plain(status, format!("{}\n", health.text));
        }
        "version" => (TEXT, format!("{}\n", version(shared))),
        _ => unreachable!("page_of names only these"),
    };
    let mut response = Response::new(if head {
        full_body(Bytes::new())
    } else {
        full_body(body)
    });
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";
const SVG: &str = "image/svg+xml";
const HTML: &str = "text/html; charset=utf-8";

fn page_body(format: Format, title: &str, text: String, html: String) -> (&'static str, String) {
    match format {
        Format::Text => (TEXT, text),
        Format::Html => (HTML, html::page(title, &html)),
    }
}

fn plain(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

/// `/protobufs` (the names, each a link) or `/protobufs/NAME` (its `.proto` source).
#[cfg(feature = "json")]
fn protobufs_page(
    shared: &Shared,
    name: &str,
    format: Format,
) -> Result<(&'static str, String), (StatusCode, String)> {
    if name.is_empty() {
        let names = protobufs::names(shared);
        let text = names.iter().map(|n| format!("{n}\n")).collect();
        let mut html = String::from("<ul>");
        for name in &names {
            let name = html::escape(name);
            html.push_str(&format!(
                "<li><a href=\"/protobufs/{name}\">{name}</a></li>"
            ));
        }
        html.push_str("</ul>");
        return Ok(page_body(format, "Protobufs", text, html));
    }
    match protobufs::definition(shared, name) {
        Some(source) => {
            let html = format!("<pre>{}</pre>", html::escape(&source));
            Ok(page_body(format, name, source, html))
        }
        None => Err((StatusCode::NOT_FOUND, format!("Fail to find `{name}'\n"))),
    }
}

/// Without the `json` feature there are no descriptors to show.
#[cfg(not(feature = "json"))]
fn protobufs_page(
    _shared: &Shared,
    _name: &str,
    _format: Format,
) -> Result<(&'static str, String), (StatusCode, String)> {
    Err((
        StatusCode::NOT_FOUND,
        "/protobufs needs brisk's `json` feature\n".to_owned(),
    ))
}

/// `/hotspots/cpu`: a CPU profile of `?seconds=N`, as a flame graph.
#[cfg(feature = "hotspots")]
async fn hotspots_cpu(query: &str) -> Result<String, (StatusCode, String)> {
    let duration =
        hotspots::seconds(query).map_err(|why| (StatusCode::BAD_REQUEST, format!("{why}\n")))?;
    hotspots::cpu(duration).await
}

/// Without the `hotspots` feature there is no profiler.
#[cfg(not(feature = "hotspots"))]
async fn hotspots_cpu(_query: &str) -> Result<String, (StatusCode, String)> {
    Err((
        StatusCode::NOT_FOUND,
        "/hotspots/cpu needs brisk's `hotspots` feature\n".to_owned(),
    ))
}

/// Text unless a browser asks (brpc: by `User-Agent`), or whatever asks with `?console=1`.
fn format_of(request: &Request<impl Sized>) -> Format {
    let console = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "console=1" || pair == "console")
    });
    let browser = request
        .headers()
        .get(USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla"));
    if browser && !console {
        Format::Html
    } else {
        Format::Text
    }
}

fn version(shared: &Shared) -> String {
    shared
        .options
        .version
        .clone()
        .unwrap_or_else(|| format!("brisk_server_{}", shared.local_addr.port()))
}

fn index_text() -> String {
    let mut out = String::new();
    for (path, what) in PAGES {
        out.push_str(&format!("{path:<14} {what}\n"));
    }
    out
}

fn index_html() -> String {
    let mut out = String::from("<ul>");
    for (path, what) in PAGES {
        out.push_str(&format!(
            "<li><a href=\"{path}\">{path}</a> — {}</li>",
            html::escape(what)
        ));
    }
    out.push_str("</ul>");
    out
}

/// `%XX` escapes decoded (a glob's `*` may come as `%2A`); bad escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages() {
        assert_eq!(page_of("/"), Some(("index", "")));
        assert_eq!(page_of(""), Some(("index", "")));
        assert_eq!(page_of("/status"), Some(("status", "")));
        assert_eq!(page_of("/status/"), Some(("status", "")));
        assert_eq!(
            page_of("/vars/rpc_*;process_*"),
            Some(("vars", "rpc_*;process_*"))
        );
        assert_eq!(page_of("/metrics"), Some(("metrics", "")));
        assert_eq!(page_of("/brpc_metrics"), Some(("metrics", "")));
        assert_eq!(page_of("/status/extra"), None);
        assert_eq!(page_of("/rpcz/enable"), Some(("rpcz", "enable")));
        assert_eq!(page_of("/rpcz/other"), None);
        assert_eq!(page_of("/example.EchoService/Echo"), None);
    }

    #[test]
    fn browsers_get_html_unless_they_ask_for_the_console() {
        let request = |ua: Option<&str>, uri: &str| {
            let mut builder = Request::builder().uri(uri);
            if let Some(ua) = ua {
                builder = builder.header(USER_AGENT, ua);
            }
            builder.body(()).unwrap()
        };
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(format_of(&request(Some(firefox), "/status")), Format::Html);
        assert_eq!(
            format_of(&request(Some(firefox), "/status?console=1")),
            Format::Text
        );
        assert_eq!(
            format_of(&request(Some("curl/8.5.0"), "/status")),
            Format::Text
        );
        assert_eq!(format_of(&request(None, "/status")), Format::Text);
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(percent_decode("rpc_%2A"), "rpc_*");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
