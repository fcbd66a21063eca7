//! `/rpcz`: the spans rpcz kept, newest first, filtered as brpc's page filters them
//! (`trace_id`, `span_id`, `log_id`, `error_code`, `min_latency` in microseconds,
//! `min_request_size`, `min_response_size`, `max_scan`); with `trace_id`, that trace's spans
//! as a tree, each with its timeline. `/rpcz/enable` and `/rpcz/disable` turn rpcz on and off
//! (on a server with `mutable_flags`).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::html::escape;
use crate::clock::CivilTime;
use crate::protocol::format_trace_id;
use crate::rpcz::{self, Span, SpanKind};

/// How many spans the listing shows unless `max_scan` says.
const DEFAULT_MAX_SCAN: usize = 100;

/// What the query asks for; a value that does not parse is an error.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Filter {
    trace_id: Option<u128>,
    span_id: Option<u64>,
    log_id: Option<i64>,
    error_code: Option<i32>,
    min_latency: Option<Duration>,
    min_request_size: Option<usize>,
    min_response_size: Option<usize>,
    max_scan: Option<usize>,
}

impl Filter {
    /// The filter a query string (`trace_id=...&min_latency=...`) sets; other parameters
    /// (`console`) are ignored.
    pub(super) fn parse(query: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |what: &str| format!("`{name}={value}' is not {what}");
            match name {
                "trace_id" => {
                    filter.trace_id =
                        Some(u128::from_str_radix(value, 16).map_err(|_| bad("a hex trace id"))?)
                }
                "span_id" => {
                    filter.span_id =
                        Some(u64::from_str_radix(value, 16).map_err(|_| bad("a hex span id"))?)
                }
                "log_id" => filter.log_id = Some(value.parse().map_err(|_| bad("a log id"))?),
                "error_code" => {
                    filter.error_code = Some(value.parse().map_err(|_| bad("an error code"))?)
                }
                "min_latency" => {
                    filter.min_latency = Some(Duration::from_micros(
                        value.parse().map_err(|_| bad("microseconds"))?,
                    ))
                }
                "min_request_size" => {
                    filter.min_request_size = Some(value.parse().map_err(|_| bad("bytes"))?)
                }
                "min_response_size" => {
                    filter.min_response_size = Some(value.parse().map_err(|_| bad("bytes"))?)
                }
                "max_scan" => filter.max_scan = Some(value.parse().map_err(|_| bad("a count"))?),
                _ => {}
            }
        }
        Ok(filter)
    }

    fn matches(&self, span: &Span) -> bool {
        let ids = span.ids();
        self.trace_id.is_none_or(|id| ids.trace_id == id)
            && self
                .span_id
                .is_none_or(|id| ids.span_id == id || ids.parent_span_id == id)
            && self.log_id.is_none_or(|id| span.log_id() == id)
            && self.error_code.is_none_or(|code| span.error_code() == code)
            && self
                .min_latency
                .is_none_or(|min| span.latency().unwrap_or_default() >= min)
            && self
                .min_request_size
                .is_none_or(|min| span.request_size() >= min)
            && self
                .min_response_size
                .is_none_or(|min| span.response_size() >= min)
    }
}

/// The spans the filter picks, newest first.
fn picked(filter: &Filter) -> Vec<Arc<Span>> {
    let max = filter.max_scan.unwrap_or(if filter.trace_id.is_some() {
        usize::MAX
    } else {
        DEFAULT_MAX_SCAN
    });
    rpcz::recent()
        .into_iter()
        .filter(|span| filter.matches(span))
        .take(max)
        .collect()
}

/// A wall-clock time as `2026-12-05 23:59:01.123456` (UTC).
fn wall_clock(time: SystemTime) -> String {
    let t = CivilTime::utc(time);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

fn kind_letter(span: &Span) -> &'static str {
    match span.kind() {
        SpanKind::Server => "S",
        SpanKind::Client => "C",
    }
}

/// One span on one line: when, side, ids, method, peer, latency, sizes, code.
fn summary(span: &Span) -> String {
    let ids = span.ids();
    let peer = span
        .remote()
        .map_or_else(|| "-".to_owned(), |remote| remote.to_string());
    let (towards, latency) = match (span.kind(), span.latency()) {
        (SpanKind::Server, latency) => ("from", latency),
        (SpanKind::Client, latency) => ("to", latency),
    };
    format!(
        "{} {} trace={} span={:016x} parent={:016x} {}.{} {towards} {peer} over {} log_id={} \
         latency={}us request={}B response={}B error_code={}",
        wall_clock(span.began_at()),
        kind_letter(span),
        format_trace_id(ids.trace_id),
        ids.span_id,
        ids.parent_span_id,
        span.service(),
        span.method(),
        span.protocol(),
        span.log_id(),
        latency.unwrap_or_default().as_micros(),
        span.request_size(),
        span.response_size(),
        span.error_code(),
    )
}

fn state_line() -> String {
    format!(
        "rpcz is {} (at most {} new traces a second; the last {} spans are kept)\n",
        if rpcz::is_enabled() { "on" } else { "off" },
        rpcz::max_spans_per_second(),
        rpcz::capacity()
    )
}

/// The page as text: the listing, or with `trace_id` the trace's tree.
pub(super) fn text(filter: &Filter) -> String {
    let spans = picked(filter);
    let mut out = state_line();
    if filter.trace_id.is_some() {
        for (depth, span) in tree(&spans) {
            let indent = "  ".repeat(depth);
            let _ = writeln!(out, "{indent}{}", summary(&span));
            for event in span.events() {
                let _ = writeln!(
                    out,
                    "{indent}    {:>9}us {}",
                    event.at.as_micros(),
                    event.what
                );
            }
        }
    } else {
        for span in &spans {
            let _ = writeln!(out, "{}", summary(span));
        }
    }
    if spans.is_empty() {
        out.push_str("no span matches\n");
    }
    out
}

/// The page as HTML: a table of spans (each trace id a link to its tree), or the tree.
pub(super) fn html(filter: &Filter) -> String {
    let spans = picked(filter);
    let mut out = format!(
        "<p id=\"rpcz-state\">{}</p>",
        escape(state_line().trim_end())
    );
    out.push_str(
        "<form action=\"/rpcz\">trace_id <input name=\"trace_id\" size=\"18\"> log_id \
         <input name=\"log_id\" size=\"8\"> min_latency (us) <input name=\"min_latency\" \
         size=\"8\"> error_code <input name=\"error_code\" size=\"5\"> <button>filter</button></form>",
    );
    if filter.trace_id.is_some() {
        out.push_str("<div id=\"rpcz-trace\">");
        for (depth, span) in tree(&spans) {
            let _ = write!(
                out,
                "<div class=\"span\" style=\"margin-left:{}em\"><b>{}</b><ul>",
                depth * 2,
                escape(&summary(&span))
            );
            for event in span.events() {
                let _ = write!(
                    out,
                    "<li>{}us {}</li>",
                    event.at.as_micros(),
                    escape(&event.what)
                );
            }
            out.push_str("</ul></div>");
        }
        out.push_str("</div>");
        return out;
    }
    out.push_str(
        "<table id=\"rpcz\"><tr><th>began (UTC)</th><th>side</th><th>trace</th><th>method</th>\
         <th>peer</th><th>protocol</th><th>latency</th><th>request</th><th>response</th>\
         <th>error</th><th>log id</th></tr>",
    );
    for span in &spans {
        let trace = format_trace_id(span.ids().trace_id);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><a href=\"/rpcz?trace_id={trace}\">{trace}</a></td>\
             <td>{}.{}</td><td>{}</td><td>{}</td><td>{}us</td><td>{}B</td><td>{}B</td>\
             <td>{}</td><td>{}</td></tr>",
            wall_clock(span.began_at()),
            kind_letter(span),
            escape(span.service()),
            escape(span.method()),
            span.remote()
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            escape(span.protocol()),
            span.latency().unwrap_or_default().as_micros(),
            span.request_size(),
            span.response_size(),
            span.error_code(),
            span.log_id()
        );
    }
    out.push_str("</table>");
    out
}

/// A trace's spans in tree order, each with its depth. A client span's parent is the server
/// span whose handler made it (its `parent_span_id`); a server span's is the client span of
/// the same call (the same span id, as brpc and Brisk send it; or the W3C parent id). Spans
/// whose parent is not here are roots; siblings go by when they began. Linear in the spans
/// (indexed by id, walked without recursion), so a trace forged to be huge or deep costs no
/// more than its size; forged ids that make a cycle show its spans as roots, once each.
fn tree(spans: &[Arc<Span>]) -> Vec<(usize, Arc<Span>)> {
    let mut by_id: HashMap<(bool, u64), usize> = HashMap::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let id = span.ids().span_id;
        if id != 0 {
            by_id
                .entry((span.kind() == SpanKind::Server, id))
                .or_insert(i);
        }
    }
    let find = |server: bool, id: u64| by_id.get(&(server, id)).copied();
    let parents: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let ids = span.ids();
            let parent = match span.kind() {
                SpanKind::Client => find(true, ids.parent_span_id),
                SpanKind::Server => {
                    find(false, ids.span_id).or_else(|| find(false, ids.parent_span_id))
                }
            };
            parent.filter(|&p| p != i)
        })
        .collect();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i].began_at());
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for &i in &order {
        if let Some(parent) = parents[i] {
            children[parent].push(i);
        }
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    let roots = order.iter().copied().filter(|&i| parents[i].is_none());
    // Spans caught in a cycle have no root: each unplaced one starts a walk of its own.
    let rest: Vec<usize> = order.clone();
    for start in roots.chain(rest) {
        let mut stack = vec![(start, 0)];
        while let Some((at, depth)) = stack.pop() {
            if std::mem::replace(&mut placed[at], true) {
                continue;
            }
            out.push((depth, Arc::clone(&spans[at])));
            stack.extend(children[at].iter().rev().map(|&child| (child, depth + 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn queries_parse_as_brpc_names_them_and_bad_values_are_refused() {
        let filter = Filter::parse(
            "trace_id=00ab&log_id=7&min_latency=100&error_code=1008&max_scan=5&console=1",
        )
        .unwrap();
        assert_eq!(filter.trace_id, Some(0xab));
        assert_eq!(filter.log_id, Some(7));
        assert_eq!(filter.min_latency, Some(Duration::from_micros(100)));
        assert_eq!(filter.error_code, Some(1008));
        assert_eq!(filter.max_scan, Some(5));
        assert_eq!(Filter::parse("").unwrap(), Filter::default());
        let error = Filter::parse("trace_id=xyz").unwrap_err();
        assert_eq!(error, "`trace_id=xyz' is not a hex trace id");
        assert!(Filter::parse("min_latency=-1").is_err());
    }

    #[test]
    fn a_trace_is_shown_as_the_calls_nest() {
        let ids = |span_id, parent_span_id| crate::protocol::TraceIds {
            trace_id: 9,
            span_id,
            parent_span_id,
        };
        let at = Duration::from_millis;
        // A client (1) calls a server (1, brpc's way: the same span id), whose handler calls
        // two servers (2 and 3); server 3 heard of it by traceparent (a span id of its own,
        // its parent the client's). Server 7's client is not here: a root.
        let spans = [
            Span::for_tests(SpanKind::Server, ids(3_000, 3), at(6)),
            Span::for_tests(SpanKind::Client, ids(1, 0), at(1)),
            Span::for_tests(SpanKind::Server, ids(1, 0), at(2)),
            Span::for_tests(SpanKind::Client, ids(2, 1), at(3)),
            Span::for_tests(SpanKind::Client, ids(3, 1), at(5)),
            Span::for_tests(SpanKind::Server, ids(2, 1), at(4)),
            Span::for_tests(SpanKind::Server, ids(7, 6), at(0)),
        ];
        let shown: Vec<(usize, SpanKind, u64)> = tree(&spans)
            .into_iter()
            .map(|(depth, span)| (depth, span.kind(), span.ids().span_id))
            .collect();
        use SpanKind::{Client as C, Server as S};
        assert_eq!(
            shown,
            [
                (0, S, 7),
                (0, C, 1),
                (1, S, 1),
                (2, C, 2),
                (3, S, 2),
                (2, C, 3),
                (3, S, 3_000),
            ]
        );
        // Forged ids that make a cycle still show every span once.
        let cycle = [
            Span::for_tests(SpanKind::Client, ids(5, 6), at(1)),
            Span::for_tests(SpanKind::Server, ids(6, 5), at(2)),
        ];
        let cycle_shown = tree(&cycle);
        assert_eq!(cycle_shown.len(), 2);
    }

    #[test]
    fn a_forged_deep_trace_is_walked_without_recursion() {
        let ids = |span_id, parent_span_id| crate::protocol::TraceIds {
            trace_id: 1,
            span_id,
            parent_span_id,
        };
        // 20,000 calls, each made by the previous call's handler: 40,000 levels.
        let mut spans = Vec::new();
        for call in 1..=20_000u64 {
            let at = Duration::from_micros(call);
            spans.push(Span::for_tests(SpanKind::Client, ids(call, call - 1), at));
            spans.push(Span::for_tests(SpanKind::Server, ids(call, call - 1), at));
        }
        let shown = tree(&spans);
        assert_eq!(shown.len(), 40_000);
        assert_eq!(shown.last().map(|(depth, _)| *depth), Some(39_999));
    }

    #[test]
    fn wall_clock_times_are_utc_dates() {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_515_141_123_456);
        assert_eq!(wall_clock(at), "2026-12-05 23:59:01.123456");
        assert_eq!(wall_clock(UNIX_EPOCH), "1970-01-01 00:00:00.000000");
        assert_eq!(
            wall_clock(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00.000000"
        );
    }
}
