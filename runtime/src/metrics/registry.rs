//! Metrics by name (bvar's exposed variables): what `/vars` lists and `/brpc_metrics` exports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use super::{Counter, Gauge, LatencyRecorder, Maxer, PassiveGauge};
use crate::Error;

/// Window of a latency recorder's figures under its exposed names (brpc's
/// `-bvar_dump_interval`, 10 s).
pub const LATENCY_WINDOW_SECS: u32 = 10;

/// A metric that can be exposed by name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Metric {
    /// A count that only grows.
    Counter(Counter),
    /// A value set from code.
    Gauge(Gauge),
    /// A value computed when shown.
    Passive(PassiveGauge),
    /// The largest value recorded.
    Maxer(Maxer),
    /// Latencies, exposed as brpc's `LatencyRecorder` is: under a prefix `P`, as `P_latency`
    /// (average), `P_max_latency`, `P_qps`, `P_count` and `P_latency_80`/`90`/`99`/`999`/`9999`
    /// (µs, over the last 10 s, `P_count` over the process's life).
    Latency(LatencyRecorder),
}

macro_rules! metric_from {
    ($($kind:ident => $variant:ident),*) => {$(
        impl From<$kind> for Metric {
            fn from(metric: $kind) -> Metric {
                Metric::$variant(metric)
            }
        }
        impl From<&$kind> for Metric {
            fn from(metric: &$kind) -> Metric {
                Metric::$variant(metric.clone())
            }
        }
    )*};
}
metric_from!(
    Counter => Counter,
    Gauge => Gauge,
    Maxer => Maxer,
    PassiveGauge => Passive,
    LatencyRecorder => Latency
);

struct Entry {
    id: u64,
    metric: Metric,
}

static EXPOSED: LazyLock<RwLock<BTreeMap<String, Entry>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Shows `metric` under `name` in `/vars` and `/brpc_metrics` until the returned [`Exposed`]
/// is dropped. EINVAL if the name is taken or is not a Prometheus metric name
/// (`[a-zA-Z_:][a-zA-Z0-9_:]*`; [`to_underscored_name`] makes one of any text).
///
/// ```
/// use brisk::metrics::{self, Counter};
/// let orders = Counter::new();
/// let _shown = metrics::expose("shop_orders", &orders).unwrap();
/// orders.inc();
/// assert!(metrics::expose("shop_orders", &orders).is_err(), "taken");
/// assert_eq!(metrics::describe("shop_orders"), vec![("shop_orders".to_owned(), "1".to_owned())]);
/// ```
pub fn expose(name: impl Into<String>, metric: impl Into<Metric>) -> Result<Exposed, Error> {
    let name = name.into();
    if !is_metric_name(&name) {
        return Err(Error::invalid(format!(
            "`{name}` is not a metric name: [a-zA-Z_:][a-zA-Z0-9_:]*"
        )));
    }
    let metric = metric.into();
    let mut exposed = EXPOSED.write().unwrap_or_else(|e| e.into_inner());
    if exposed.contains_key(&name) {
        return Err(Error::invalid(format!(
            "a metric named `{name}` is exposed already"
        )));
    }
    // A latency recorder shows under several names: none may be another metric's.
    let wanted = shown_names(&name, &metric);
    if let Some((taken, _)) = exposed.iter().find(|(other, entry)| {
        shown_names(other, &entry.metric)
            .iter()
            .any(|n| wanted.contains(n))
    }) {
        return Err(Error::invalid(format!(
            "`{name}` would show under a name `{taken}` shows under already"
        )));
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    exposed.insert(name.clone(), Entry { id, metric });
    Ok(Exposed { name, id })
}

/// Every name a metric exposed as `name` shows under, in `/vars` and `/brpc_metrics`.
fn shown_names(name: &str, metric: &Metric) -> Vec<String> {
    match metric {
        Metric::Latency(_) => {
            let prefix = latency_prefix(name);
            let mut names: Vec<String> = [
                "",
                "_count",
                "_sum",
                "_latency",
                "_max_latency",
                "_qps",
                "_latency_80",
                "_latency_90",
                "_latency_99",
                "_latency_999",
                "_latency_9999",
            ]
            .iter()
            .map(|suffix| format!("{prefix}{suffix}"))
            .collect();
            names.push(name.to_owned());
            names
        }
        _ => vec![name.to_owned()],
    }
}

/// A metric shown by name; dropping it hides the name again.
#[derive(Debug)]
#[must_use = "the metric is hidden again when this is dropped"]
pub struct Exposed {
    name: String,
    id: u64,
}

impl Exposed {
    /// The name it is shown under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Exposed {
    fn drop(&mut self) {
        let mut exposed = EXPOSED.write().unwrap_or_else(|e| e.into_inner());
        if exposed.get(&self.name).is_some_and(|e| e.id == self.id) {
            exposed.remove(&self.name);
        }
    }
}

/// The metric exposed under `name`, if any.
pub fn find(name: &str) -> Option<Metric> {
    let exposed = EXPOSED.read().unwrap_or_else(|e| e.into_inner());
    exposed.get(name).map(|e| e.metric.clone())
}

/// Every exposed metric, by name.
pub(crate) fn all() -> Vec<(String, Metric)> {
    let exposed = EXPOSED.read().unwrap_or_else(|e| e.into_inner());
    exposed
        .iter()
        .map(|(name, e)| (name.clone(), e.metric.clone()))
        .collect()
}

/// The values `/vars` shows, `(name, value)` sorted by name, of the names `filter` matches:
/// brpc's globs, several separated by `,` or `;`, where `*` matches any run of characters
/// and `$` (or `?`) any one; an empty filter matches all. A latency recorder shows as its
/// several names.
pub fn describe(filter: &str) -> Vec<(String, String)> {
    let mut shown = Vec::new();
    for (name, metric) in all() {
        for (name, value) in expand(&name, &metric) {
            if matches_filter(filter, &name) {
                shown.push((name, value));
            }
        }
    }
    shown.sort();
    shown
}

/// The names and values a metric shows as.
fn expand(name: &str, metric: &Metric) -> Vec<(String, String)> {
    match metric {
        Metric::Counter(c) => vec![(name.to_owned(), c.get().to_string())],
        Metric::Gauge(g) => vec![(name.to_owned(), g.get().to_string())],
        Metric::Maxer(m) => vec![(name.to_owned(), m.get().to_string())],
        Metric::Passive(p) => vec![(name.to_owned(), format_float(p.get()))],
        Metric::Latency(recorder) => {
            let stats = recorder.stats(LATENCY_WINDOW_SECS);
            let prefix = latency_prefix(name);
            let [_, p80, p90, p99, p999, p9999] = stats.percentiles_us;
            vec![
                (format!("{prefix}_count"), recorder.count().to_string()),
                (format!("{prefix}_latency"), stats.avg_us.to_string()),
                (format!("{prefix}_latency_80"), p80.to_string()),
                (format!("{prefix}_latency_90"), p90.to_string()),
                (format!("{prefix}_latency_99"), p99.to_string()),
                (format!("{prefix}_latency_999"), p999.to_string()),
                (format!("{prefix}_latency_9999"), p9999.to_string()),
                (format!("{prefix}_max_latency"), stats.max_us.to_string()),
                (format!("{prefix}_qps"), format_float(stats.qps.round())),
            ]
        }
    }
}

/// A latency recorder's prefix: its name without a trailing `_latency`, as brpc's.
pub(crate) fn latency_prefix(name: &str) -> &str {
    name.strip_suffix("_latency")
        .filter(|p| !p.is_empty())
        .unwrap_or(name)
}

/// A float as `/vars` shows it: whole numbers without a fraction.
pub(crate) fn format_float(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.3}")
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `text` as a metric name, brpc's `to_underscored_name`: `example.EchoService.Echo` is
/// `example_echo_service_echo` (a capital starts a new word, anything not a letter or digit
/// is `_`, runs of `_` are one).
///
/// ```
/// assert_eq!(brisk::metrics::to_underscored_name("example.EchoService.Echo"), "example_echo_service_echo");
/// assert_eq!(brisk::metrics::to_underscored_name("HTTPServer2"), "httpserver2");
/// ```
pub fn to_underscored_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_uppercase() {
            if previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                && !out.ends_with('_')
            {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Whether `name` matches one of the globs in `filter` (see [`describe`]).
pub(crate) fn matches_filter(filter: &str, name: &str) -> bool {
    let mut globs = filter
        .split([',', ';'])
        .map(str::trim)
        .filter(|g| !g.is_empty());
    let mut any = false;
    let matched = globs.any(|glob| {
        any = true;
        glob_matches(glob.as_bytes(), name.as_bytes())
    });
    matched || (!any && filter.trim().is_empty())
}

/// `*` any run, `$` or `?` any one byte; the rest literally.
fn glob_matches(glob: &[u8], name: &[u8]) -> bool {
    // Iterative matching with one backtrack point (the last `*`).
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == b'$' || c == b'?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_brpc_vars() {
        let m = |filter, name| matches_filter(filter, name);
        assert!(m("", "anything"));
        assert!(m("rpc_server_*", "rpc_server_8000_count"));
        assert!(!m("rpc_server_*", "process_uptime"));
        assert!(m("*_count", "rpc_server_8000_count"));
        assert!(m("process_fd_coun$", "process_fd_count"));
        assert!(m("nope;process_*", "process_uptime"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("process_uptime", "process_uptime"));
        assert!(
            !m("process_uptim", "process_uptime"),
            "a name without a glob is exact"
        );
    }

    #[test]
    fn underscored_names() {
        assert_eq!(
            to_underscored_name("example.EchoService.Echo"),
            "example_echo_service_echo"
        );
        assert_eq!(
            to_underscored_name("brpc.policy.HuluService"),
            "brpc_policy_hulu_service"
        );
        assert_eq!(to_underscored_name("a..b--c"), "a_b_c");
        assert_eq!(to_underscored_name("9lives"), "_9lives");
    }

    #[test]
    fn names_are_checked_and_freed_on_drop() {
        assert!(expose("bad name", Gauge::new()).is_err());
        assert!(expose("9starts_with_digit", Gauge::new()).is_err());
        let gauge = Gauge::new();
        gauge.set(-4);
        let shown = expose("registry_test_gauge", &gauge).unwrap();
        assert_eq!(
            describe("registry_test_gauge"),
            vec![("registry_test_gauge".into(), "-4".into())]
        );
        assert!(expose("registry_test_gauge", Gauge::new()).is_err());
        drop(shown);
        assert!(find("registry_test_gauge").is_none());
        let again = expose("registry_test_gauge", Gauge::new()).unwrap();
        assert_eq!(again.name(), "registry_test_gauge");
    }

    #[test]
    fn names_a_latency_recorder_shows_under_are_its_own() {
        let recorder = LatencyRecorder::unsampled();
        let _get = expose("registry_clash_get_latency", &recorder).unwrap();
        // `..._get_count` is the recorder's count; `..._get` its Prometheus summary.
        assert!(expose("registry_clash_get_count", Counter::unsampled()).is_err());
        assert!(expose("registry_clash_get", Gauge::new()).is_err());
        assert!(expose("registry_clash_get_latency_99", Gauge::new()).is_err());
        // A method named GetCount beside Get: its summary would be Get's `_count` sample, which
        // Prometheus would refuse the whole scrape for; it is not shown (the server logs it).
        assert!(expose("registry_clash_get_count_latency", &recorder).is_err());
        let _get_size = expose("registry_clash_get_size_latency", &recorder).unwrap();
        // The other way round: a gauge first, then a recorder that would show over it.
        let _gauge = expose("registry_clash_put_qps", Gauge::new()).unwrap();
        assert!(expose("registry_clash_put_latency", &recorder).is_err());
    }

    #[test]
    fn a_latency_recorder_shows_as_brpcs_names() {
        let recorder = LatencyRecorder::unsampled();
        recorder.record_us(100);
        recorder.take_sample();
        let _shown = expose("registry_test_call_latency", &recorder).unwrap();
        let names: Vec<String> = describe("registry_test_call_*")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "registry_test_call_count",
                "registry_test_call_latency",
                "registry_test_call_latency_80",
                "registry_test_call_latency_90",
                "registry_test_call_latency_99",
                "registry_test_call_latency_999",
                "registry_test_call_latency_9999",
                "registry_test_call_max_latency",
                "registry_test_call_qps",
            ]
        );
        assert_eq!(describe("registry_test_call_max_latency")[0].1, "100");
    }
}
