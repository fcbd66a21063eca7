//! A call's response metadata as the client received it. HTTP and gRPC responses keep the
//! header maps hyper and h2 handed over (the head, then gRPC's trailers), read as text only
//! when asked: a call copies none of them into owned strings (a gRPC call used to make 16
//! strings of its four headers, and copy them again into the controller). Framed protocols
//! have none, and their calls allocate nothing for it.

use http::HeaderMap;

/// Response metadata: HTTP headers, gRPC headers and trailers, in the order received.
/// One pointer wide, as it travels in every call's answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResponseMetadata(Option<Box<Maps>>);

#[derive(Clone, Debug)]
struct Maps {
    head: HeaderMap,
    trailers: Option<HeaderMap>,
}

impl ResponseMetadata {
    /// The metadata of a response with these headers and (gRPC) trailers.
    pub(crate) fn new(head: HeaderMap, trailers: Option<HeaderMap>) -> Self {
        ResponseMetadata(Some(Box::new(Maps { head, trailers })))
    }

    /// The first text value of `name`, compared without regard to case; the head is looked at
    /// before the trailers.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.maps()
            .find_map(|map| map.get_all(name).iter().find_map(|v| v.to_str().ok()))
    }

    /// Every name and text value (values that are not text are left out), head then trailers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.maps()
            .flat_map(HeaderMap::iter)
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }

    fn maps(&self) -> impl Iterator<Item = &HeaderMap> {
        self.0
            .iter()
            .flat_map(|maps| std::iter::once(&maps.head).chain(maps.trailers.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn map(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn looks_up_names_in_any_case_head_before_trailers() {
        let metadata = ResponseMetadata::new(
            map(&[("content-type", b"application/grpc"), ("x-both", b"head")]),
            Some(map(&[("grpc-status", b"0"), ("x-both", b"trailer")])),
        );
        assert_eq!(metadata.get("Content-Type"), Some("application/grpc"));
        assert_eq!(metadata.get("GRPC-STATUS"), Some("0"));
        assert_eq!(metadata.get("x-both"), Some("head"));
        assert_eq!(metadata.get("x-none"), None);
        assert_eq!(metadata.get("not a header name"), None);
    }

    #[test]
    fn lists_text_values_in_order_and_skips_the_others() {
        let metadata = ResponseMetadata::new(
            map(&[("a", b"1"), ("bin", b"\xff\xfe"), ("a", b"2")]),
            Some(map(&[("grpc-status", b"0")])),
        );
        let pairs: Vec<_> = metadata.iter().collect();
        assert_eq!(pairs, [("a", "1"), ("a", "2"), ("grpc-status", "0")]);
        // The first text value, past one that is not text.
        let metadata = ResponseMetadata::new(map(&[("v", b"\xff"), ("v", b"ok")]), None);
        assert_eq!(metadata.get("v"), Some("ok"));
        assert_eq!(ResponseMetadata::default().iter().count(), 0);
    }

    #[test]
    fn is_one_pointer_wide() {
        assert_eq!(
            std::mem::size_of::<ResponseMetadata>(),
            std::mem::size_of::<usize>()
        );
    }
}
