//! `/flags`: the server's options, as brpc's gflags page shows its flags; with
//! `mutable_flags`, the concurrency limits and rpcz's switches can be set while it runs
//! (`/flags/NAME?setvalue=V`), each value checked first.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;

use super::html::escape;
use crate::limiter::MaxConcurrency;
use crate::rpcz;
use crate::server::state::Shared;

/// One flag: its name, value now, what it is, and whether it can be set.
struct Flag {
    name: String,
    value: String,
    what: Cow<'static, str>,
    settable: bool,
}

fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "none".to_owned(), |d| format!("{}ms", d.as_millis()))
}

fn flags(shared: &Shared) -> Vec<Flag> {
    let options = &shared.options;
    let flag = |name: &str, value: String, what: &'static str, settable| Flag {
        name: name.to_owned(),
        value,
        what: Cow::Borrowed(what),
        settable,
    };
    let mut flags = vec![
        flag(
            "max_concurrency",
            shared.max_concurrency.load(Ordering::Relaxed).to_string(),
            "requests the server runs at once (0: no limit)",
            true,
        ),
        flag(
            "max_body_size",
            options.max_body_size.to_string(),
            "largest request body, bytes",
            false,
        ),
        flag(
            "max_connections",
            options.max_connections.to_string(),
            "connections kept open at once (0: no limit)",
            false,
        ),
        flag(
            "first_bytes_timeout",
            millis(options.first_bytes_timeout),
            "time for a new connection's protocol and first request",
            false,
        ),
        flag(
            "request_read_timeout",
            millis(options.request_read_timeout),
            "time for an HTTP request's headers, then its body",
            false,
        ),
        flag(
            "idle_timeout",
            millis(options.idle_timeout),
            "closes connections idle this long",
            false,
        ),
        flag(
            "builtin_services",
            options.builtin_services.to_string(),
            "serves these pages",
            false,
        ),
        flag(
            "internal_port",
            options
                .internal_port
                .map_or_else(|| "none".to_owned(), |p| p.to_string()),
            "the only port serving these pages",
            false,
        ),
        flag(
            "reflection",
            options.reflection.to_string(),
            "answers gRPC server reflection",
            false,
        ),
        flag(
            "enable_rpcz",
            rpcz::is_enabled().to_string(),
            "keeps spans of traced calls for /rpcz (the whole process)",
            true,
        ),
        flag(
            "rpcz_max_spans_per_second",
            rpcz::max_spans_per_second().to_string(),
            "calls a second that may start a trace, 1 to 1000000",
            true,
        ),
        flag(
            "rpcz_capacity",
            rpcz::capacity().to_string(),
            "spans /rpcz keeps, 1 to 1000000",
            true,
        ),
    ];
    for (service, method, _) in shared.registry.statuses() {
        let full = format!("{service}.{method}");
        let limit = shared.registry.max_concurrency_of(&full).unwrap_or(0);
        flags.push(Flag {
            name: format!("max_concurrency_of({full})"),
            value: limit.to_string(),
            what: Cow::Borrowed("the method's limit: a number, unlimited, auto or timeout"),
            settable: true,
        });
    }
    for user in &shared.user_flags {
        flags.push(Flag {
            name: user.name.clone(),
            value: (user.value)(),
            what: Cow::Owned(user.what.clone()),
            settable: true,
        });
    }
    flags
}

/// What a `/flags` request gets: the listing (of the flags `filter` matches), or the outcome
/// of setting one to `setvalue`; (status, text or HTML body).
pub(super) fn answer(
    shared: &Shared,
    name: &str,
    setvalue: Option<&str>,
    html: bool,
) -> (StatusCode, String) {
    if let Some(value) = setvalue {
        return set(shared, name, value);
    }
    let shown: Vec<Flag> = flags(shared)
        .into_iter()
        .filter(|f| crate::metrics::matches_filter(name, &f.name))
        .collect();
    if shown.is_empty() && !name.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("Fail to find flag `{name}'\n"),
        );
    }
    if !html {
        let mut out = String::new();
        for f in &shown {
            let settable = if f.settable && shared.options.mutable_flags {
                " (settable)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{} | {} | {}{settable}\n",
                f.name, f.value, f.what
            ));
        }
        return (StatusCode::OK, out);
    }
    let mut out = String::from("<table><tr><th>name</th><th>value</th><th>what</th></tr>");
    for f in &shown {
        let name = escape(&f.name);
        let value = if f.settable && shared.options.mutable_flags {
            format!(
                "<form action=\"/flags/{name}\"><input name=\"setvalue\" value=\"{}\"> <button>set</button></form>",
                escape(&f.value)
            )
        } else {
            escape(&f.value)
        };
        out.push_str(&format!(
            "<tr><td>{name}</td><td>{value}</td><td>{}</td></tr>",
            escape(&f.what)
        ));
    }
    out.push_str("</table>");
    (StatusCode::OK, out)
}

/// Sets flag `name` to `value`: 200, or 400 for a bad value, 403 for a flag that cannot be
/// set (or on a server without `mutable_flags`), 404 for no such flag.
fn set(shared: &Shared, name: &str, value: &str) -> (StatusCode, String) {
    if !shared.options.mutable_flags {
        return (
            StatusCode::FORBIDDEN,
            "flags are read-only here: the server was built without mutable_flags(true)\n"
                .to_owned(),
        );
    }
    let bad = |why: String| {
        (
            StatusCode::BAD_REQUEST,
            format!("Fail to set `{name}' to `{value}': {why}\n"),
        )
    };
    if name == "max_concurrency" {
        let max = match value.trim().parse::<MaxConcurrency>() {
            Ok(MaxConcurrency::Unlimited) => 0,
            Ok(MaxConcurrency::Constant(max)) => max,
            Ok(_) => {
                return bad(
                    "the server's limit is a number (auto and timeout are per method)".into(),
                )
            }
            Err(e) => return bad(e.to_string()),
        };
        shared.max_concurrency.store(max, Ordering::Relaxed);
        return (StatusCode::OK, format!("Set `{name}' to {max}\n"));
    }
    let count = |value: &str| -> Result<u32, String> {
        match value.trim().parse::<u32>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err("it must be a whole number from 1 to 1000000".into()),
        }
    };
    match name {
        "enable_rpcz" => {
            let on = match value.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return bad("it must be true or false".into()),
            };
            rpcz::set_enabled(on);
            return (StatusCode::OK, format!("Set `{name}' to {on}\n"));
        }
        "rpcz_max_spans_per_second" | "rpcz_capacity" => {
            let n = match count(value) {
                Ok(n) => n,
                Err(why) => return bad(why),
            };
            if name == "rpcz_capacity" {
                rpcz::set_capacity(n as usize);
            } else {
                rpcz::set_max_spans_per_second(n);
            }
            return (StatusCode::OK, format!("Set `{name}' to {n}\n"));
        }
        _ => {}
    }
    if let Some(method) = name
        .strip_prefix("max_concurrency_of(")
        .and_then(|n| n.strip_suffix(')'))
    {
        let max = match value.trim().parse::<MaxConcurrency>() {
            Ok(max) => max,
            Err(e) => return bad(e.to_string()),
        };
        return match shared.registry.set_max_concurrency_of(method, &max) {
            Ok(()) => (StatusCode::OK, format!("Set `{name}' to {max}\n")),
            Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")),
        };
    }
    if let Some(user) = shared.user_flags.iter().find(|f| f.name == name) {
        return match (user.set)(value) {
            Ok(()) => (
                StatusCode::OK,
                format!("Set `{name}' to {}\n", (user.value)()),
            ),
            Err(why) => bad(why),
        };
    }
    if flags(shared).iter().any(|f| f.name == name) {
        return (
            StatusCode::FORBIDDEN,
            format!("`{name}' cannot be set while the server runs\n"),
        );
    }
    (
        StatusCode::NOT_FOUND,
        format!("Fail to find flag `{name}'\n"),
    )
}
