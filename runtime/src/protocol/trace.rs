//! Trace context on the wire: the ids that tie a call's spans together across processes
//! (rpcz's), and how HTTP and gRPC carry them — W3C's `traceparent` header, and brpc's
//! `x-bd-trace-id`, `x-bd-span-id` and `x-bd-parent-span-id`. baidu_std carries them in
//! `RpcRequestMeta` fields 4–6 (its codec reads and writes them).

use http::{HeaderMap, HeaderValue};

/// The trace a call belongs to and its place in it.
///
/// A client span sends its own id as `span_id` and its parent's as `parent_span_id`; the
/// server's span for that call takes both over (the two sides of one call share a span id, as
/// in brpc and Zipkin), and the calls its handler makes are children of it.
///
/// ```
/// use brisk::protocol::TraceIds;
/// let ids = TraceIds { trace_id: 0x4bf92f3577b34da6, span_id: 0x00f067aa0ba902b7, parent_span_id: 0 };
/// assert_eq!(ids.traceparent(), "00-00000000000000004bf92f3577b34da6-00f067aa0ba902b7-01");
/// // The server's span is a child of the sender's, its own id still to be given.
/// let heard = TraceIds::from_traceparent(&ids.traceparent()).unwrap();
/// assert_eq!((heard.trace_id, heard.span_id, heard.parent_span_id), (ids.trace_id, 0, ids.span_id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceIds {
    /// The trace: every span of one request's journey through the system. brpc's ids are 64
    /// bits; W3C's are 128 (the low 64 go where only 64 fit).
    pub trace_id: u128,
    /// This call's span.
    pub span_id: u64,
    /// The span whose work made this call; 0 for the first.
    pub parent_span_id: u64,
}

/// W3C's trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// brpc's HTTP header for the trace id (decimal).
pub const BRPC_TRACE_ID: &str = "x-bd-trace-id";
/// brpc's HTTP header for the span id (decimal).
pub const BRPC_SPAN_ID: &str = "x-bd-span-id";
/// brpc's HTTP header for the parent span id (decimal).
pub const BRPC_PARENT_SPAN_ID: &str = "x-bd-parent-span-id";

impl TraceIds {
    /// The ids a request carries in baidu_std's `RpcRequestMeta` (fields 4, 5, 6): none
    /// without a trace id (0 is none, as in brpc).
    pub fn from_brpc_meta(
        trace_id: Option<i64>,
        span_id: Option<i64>,
        parent_span_id: Option<i64>,
    ) -> Option<Self> {
        let trace_id = trace_id.filter(|id| *id != 0)? as u64;
        Some(TraceIds {
            trace_id: u128::from(trace_id),
            span_id: span_id.unwrap_or_default() as u64,
            parent_span_id: parent_span_id.unwrap_or_default() as u64,
        })
    }

    /// The trace id as brpc's 64-bit one: its low 64 bits.
    pub fn brpc_trace_id(&self) -> u64 {
        self.trace_id as u64
    }

    /// The trace id in hex, 16 digits when it fits in 64 bits (brpc's), else 32 (W3C's).
    pub fn trace_id_hex(&self) -> String {
        format_trace_id(self.trace_id)
    }

    /// The `traceparent` header value for a request in this span: version 00, the trace id,
    /// this span as the parent the server sees, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// The ids a `traceparent` value carries (version 00 and any later version's first four
    /// fields, as the W3C recommendation says): the server's span is a child of the sender's
    /// (`parent_span_id`), with an id of its own to be given. None for a malformed value, an
    /// all-zero id, or a trace its sender does not sample (flag `01` clear: OpenTelemetry
    /// sends `traceparent` on every request, sampled or not).
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let mut fields = value.trim().split('-');
        let version = fields.next()?;
        let trace_id = fields.next()?;
        let parent_id = fields.next()?;
        let flags = fields.next()?;
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace_id, 32)
            || !hex(parent_id, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        if version == "00" && fields.next().is_some() {
            return None;
        }
        let sampled = u8::from_str_radix(flags, 16).ok()? & 0x01 != 0;
        if !sampled {
            return None;
        }
        let trace_id = u128::from_str_radix(trace_id, 16)
            .ok()
            .filter(|id| *id != 0)?;
        let parent_span_id = u64::from_str_radix(parent_id, 16)
            .ok()
            .filter(|id| *id != 0)?;
        Some(TraceIds {
            trace_id,
            span_id: 0,
            parent_span_id,
        })
    }

    /// The ids an HTTP or gRPC request carries: brpc's `x-bd-*` headers (the server's span
    /// takes the sender's span id, as brpc's does), else `traceparent`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let decimal =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        if let Some(trace_id) = decimal(BRPC_TRACE_ID).filter(|id| *id != 0) {
            return Some(TraceIds {
                trace_id: u128::from(trace_id),
                span_id: decimal(BRPC_SPAN_ID).unwrap_or_default(),
                parent_span_id: decimal(BRPC_PARENT_SPAN_ID).unwrap_or_default(),
            });
        }
        Self::from_traceparent(headers.get(TRACEPARENT)?.to_str().ok()?)
    }

    /// Adds the headers that carry these ids to an HTTP or gRPC request: `traceparent`, and
    /// brpc's `x-bd-*` when the trace id fits brpc's 64 bits. A header the request already
    /// has (the caller's own propagator set it) is left as it is, so none goes out twice.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(TRACEPARENT) {
            if let Ok(value) = HeaderValue::from_str(&self.traceparent()) {
                headers.insert(TRACEPARENT, value);
            }
        }
        if self.trace_id <= u128::from(u64::MAX) && !headers.contains_key(BRPC_TRACE_ID) {
            headers.insert(BRPC_TRACE_ID, HeaderValue::from(self.brpc_trace_id()));
            headers.insert(BRPC_SPAN_ID, HeaderValue::from(self.span_id));
            headers.insert(BRPC_PARENT_SPAN_ID, HeaderValue::from(self.parent_span_id));
        }
    }
}

/// A trace id in hex: 16 digits when it fits in 64 bits (brpc's), else 32 (W3C's).
pub fn format_trace_id(trace_id: u128) -> String {
    if trace_id <= u128::from(u64::MAX) {
        format!("{trace_id:016x}")
    } else {
        format!("{trace_id:032x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_w3c_rejects() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = TraceIds::from_traceparent(value).unwrap();
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.parent_span_id, 0x00f067aa0ba902b7);
        assert_eq!(ids.span_id, 0);
        let child = TraceIds {
            span_id: 0x00f067aa0ba902b7,
            ..ids
        };
        assert_eq!(child.traceparent(), value);
        // A trace its sender does not sample is not traced here either.
        assert_eq!(
            TraceIds::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            None
        );
        // A later version may add fields; version 00 may not.
        assert!(TraceIds::from_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
        )
        .is_some());
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
            "garbage",
        ] {
            assert_eq!(TraceIds::from_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn brpc_headers_win_over_traceparent_and_are_written_beside_it() {
        let ids = TraceIds {
            trace_id: 77,
            span_id: 5,
            parent_span_id: 3,
        };
        let mut headers = HeaderMap::new();
        ids.write_headers(&mut headers);
        assert_eq!(headers[BRPC_TRACE_ID], "77");
        assert_eq!(headers[BRPC_SPAN_ID], "5");
        assert_eq!(headers[BRPC_PARENT_SPAN_ID], "3");
        assert_eq!(TraceIds::from_headers(&headers), Some(ids));
        headers.remove(BRPC_TRACE_ID);
        assert_eq!(
            TraceIds::from_headers(&headers),
            Some(TraceIds {
                trace_id: 77,
                span_id: 0,
                parent_span_id: 5
            })
        );
        // A W3C id too long for brpc travels in traceparent only.
        let mut headers = HeaderMap::new();
        TraceIds {
            trace_id: u128::MAX - 1,
            span_id: 9,
            parent_span_id: 0,
        }
        .write_headers(&mut headers);
        assert!(headers.get(BRPC_TRACE_ID).is_none());
        assert_eq!(
            TraceIds::from_headers(&headers).unwrap().trace_id,
            u128::MAX - 1
        );
        assert_eq!(TraceIds::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn brpc_meta_ids_need_a_trace_id() {
        assert_eq!(TraceIds::from_brpc_meta(None, Some(1), Some(2)), None);
        assert_eq!(TraceIds::from_brpc_meta(Some(0), Some(1), Some(2)), None);
        let ids = TraceIds::from_brpc_meta(Some(-1), Some(1), None).unwrap();
        assert_eq!(ids.brpc_trace_id(), u64::MAX);
        assert_eq!(ids.trace_id_hex(), "ffffffffffffffff");
        assert_eq!(
            format_trace_id(u128::from(u64::MAX) + 1),
            "00000000000000010000000000000000"
        );
    }
}
