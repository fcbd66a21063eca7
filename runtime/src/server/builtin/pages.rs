//! The builtin pages there are, with what each shows: the index lists them, every HTML page
//! links to them.

/// (path, what it shows).
pub(super) const PAGES: &[(&str, &str)] = &[
    (
        "/status",
        "each method: calls, errors by code, QPS, latency percentiles, concurrency",
    ),
    (
        "/vars",
        "every metric; /vars/GLOB filters (`*` any run, `$` one character)",
    ),
    (
        "/brpc_metrics",
        "the metrics in Prometheus's text format (also /metrics)",
    ),
    (
        "/connections",
        "the server's connections and the channels': bytes and messages in and out, age",
    ),
    (
        "/rpcz",
        "recent traced calls (with rpcz on); ?trace_id=ID shows a trace as a tree",
    ),
    (
        "/hotspots/cpu",
        "a CPU profile as a flame graph, ?seconds=N (10); with the `hotspots` feature",
    ),
    (
        "/flags",
        "the server's options; /flags/NAME?setvalue=V sets a limit (with mutable_flags)",
    ),
    (
        "/protobufs",
        "the services and messages served, each as .proto source",
    ),
    (
        "/health",
        "OK (200) while the server should get calls, or why not (503)",
    ),
    ("/version", "the server's version"),
];
