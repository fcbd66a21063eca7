//! [`RedisReply`]: one reply as a redis server sends it (RESP2, and RESP3's types).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// One redis reply. RESP2 has the first six kinds; a server speaking RESP3 (after `HELLO 3`)
/// may send the others too. Texts and strings are bytes as they came (redis strings are
/// binary-safe); [`as_str`](RedisReply::as_str) reads them as UTF-8.
///
/// ```
/// use brisk::redis::RedisReply;
/// let reply = RedisReply::Bulk("hello".into());
/// assert_eq!(reply.as_str(), Some("hello"));
/// assert_eq!(reply.to_string(), "\"hello\"");
/// assert_eq!(RedisReply::Integer(3).as_integer(), Some(3));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RedisReply {
    /// No value: a missing key's null bulk string (`$-1`), a null array (`*-1`), RESP3's `_`.
    Nil,
    /// A status (simple string), `+OK`.
    Status(Bytes),
    /// An error, `-ERR unknown command` (and RESP3's blob error, `!`). A command's error is
    /// its reply: it does not fail the call.
    Error(Bytes),
    /// An integer, `:1`.
    Integer(i64),
    /// A bulk string, `$5\r\nhello`.
    Bulk(Bytes),
    /// An array of replies, `*2\r\n...`.
    Array(Vec<RedisReply>),
    /// RESP3: a double, `,3.14`.
    Double(f64),
    /// RESP3: a boolean, `#t`.
    Boolean(bool),
    /// RESP3: a big number, its decimal digits, `(3492890328409238509324850943850943825024385`.
    BigNumber(Bytes),
    /// RESP3: a verbatim string and its three-letter format (`txt`, `mkd`), `=15\r\ntxt:Some string`.
    Verbatim {
        /// The format, `txt` or `mkd`.
        format: [u8; 3],
        /// The text.
        text: Bytes,
    },
    /// RESP3: a map of key and value pairs, in the order sent, `%2\r\n...`.
    Map(Vec<(RedisReply, RedisReply)>),
    /// RESP3: a set, `~2\r\n...`.
    Set(Vec<RedisReply>),
    /// RESP3: a push (out-of-band data, pub/sub and client tracking), `>2\r\n...`.
    Push(Vec<RedisReply>),
}

impl RedisReply {
    /// The `+OK` status.
    pub fn ok() -> Self {
        RedisReply::Status(Bytes::from_static(b"OK"))
    }

    /// A status reply.
    pub fn status(text: impl Into<Bytes>) -> Self {
        RedisReply::Status(text.into())
    }

    /// An error reply; redis's start with a code word: `ERR syntax error`, `WRONGTYPE ...`.
    pub fn error(text: impl Into<Bytes>) -> Self {
        RedisReply::Error(text.into())
    }

    /// A bulk string reply.
    pub fn bulk(bytes: impl Into<Bytes>) -> Self {
        RedisReply::Bulk(bytes.into())
    }

    /// Whether it is nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, RedisReply::Nil)
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, RedisReply::Error(_))
    }

    /// The bytes of a status, error, bulk string, big number or verbatim string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            RedisReply::Status(b)
            | RedisReply::Error(b)
            | RedisReply::Bulk(b)
            | RedisReply::BigNumber(b)
            | RedisReply::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// [`as_bytes`](RedisReply::as_bytes) as UTF-8 text, if it is.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer, if it is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            RedisReply::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[RedisReply]> {
        match self {
            RedisReply::Array(items) | RedisReply::Set(items) | RedisReply::Push(items) => {
                Some(items)
            }
            _ => None,
        }
    }

    /// Appends the reply's RESP encoding to `dst` (RESP3's kinds in their RESP3 form).
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            RedisReply::Nil => dst.put_slice(b"$-1\r\n"),
            RedisReply::Status(text) => line(dst, b'+', text),
            RedisReply::Error(text) => line(dst, b'-', text),
            RedisReply::Integer(n) => header(dst, b':', *n),
            RedisReply::Bulk(bytes) => blob(dst, b'$', bytes),
            RedisReply::Array(items) => aggregate(dst, b'*', items),
            RedisReply::Double(x) => {
                let text = if x.is_nan() {
                    "nan".to_owned()
                } else if x.is_infinite() {
                    if *x > 0.0 { "inf" } else { "-inf" }.to_owned()
                } else {
                    x.to_string()
                };
                line(dst, b',', text.as_bytes());
            }
            RedisReply::Boolean(b) => dst.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            RedisReply::BigNumber(digits) => line(dst, b'(', digits),
            RedisReply::Verbatim { format, text } => {
                header(dst, b'=', text.len() as i64 + 4);
                dst.put_slice(format);
                dst.put_u8(b':');
                dst.put_slice(text);
                dst.put_slice(b"\r\n");
            }
            RedisReply::Map(pairs) => {
                header(dst, b'%', pairs.len() as i64);
                for (key, value) in pairs {
                    key.encode(dst);
                    value.encode(dst);
                }
            }
            RedisReply::Set(items) => aggregate(dst, b'~', items),
            RedisReply::Push(items) => aggregate(dst, b'>', items),
        }
    }
}

/// `<marker><text>\r\n`; CR and LF in the text (which would end the line early) become spaces,
/// as redis's `addReplyError` does.
fn line(dst: &mut BytesMut, marker: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(marker);
    for &b in text {
        dst.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    dst.put_slice(b"\r\n");
}

/// `<marker><n>\r\n`.
pub(super) fn header(dst: &mut BytesMut, marker: u8, n: i64) {
    use std::fmt::Write;
    dst.put_u8(marker);
    // Writing to a `BytesMut` cannot fail.
    let _ = write!(dst, "{n}\r\n");
}

/// `<marker><len>\r\n<bytes>\r\n`.
pub(super) fn blob(dst: &mut BytesMut, marker: u8, bytes: &[u8]) {
    dst.reserve(bytes.len() + 16);
    header(dst, marker, bytes.len() as i64);
    dst.put_slice(bytes);
    dst.put_slice(b"\r\n");
}

fn aggregate(dst: &mut BytesMut, marker: u8, items: &[RedisReply]) {
    header(dst, marker, items.len() as i64);
    for item in items {
        item.encode(dst);
    }
}

/// As brpc prints replies (and `redis-cli`, near enough): `OK`, `"hello"`, `(integer) 1`,
/// `(nil)`, `(error) ERR ...`, `["a", "b"]`.
impl fmt::Display for RedisReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        match self {
            RedisReply::Nil => f.write_str("(nil)"),
            RedisReply::Status(s) => f.write_str(&text(s)),
            RedisReply::Error(s) => write!(f, "(error) {}", text(s)),
            RedisReply::Integer(n) => write!(f, "(integer) {n}"),
            RedisReply::Bulk(s) => write!(f, "{:?}", text(s)),
            RedisReply::Double(x) => write!(f, "(double) {x}"),
            RedisReply::Boolean(b) => write!(f, "({b})"),
            RedisReply::BigNumber(s) => write!(f, "(big number) {}", text(s)),
            RedisReply::Verbatim { text: s, .. } => write!(f, "{:?}", text(s)),
            RedisReply::Array(items) | RedisReply::Set(items) | RedisReply::Push(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            RedisReply::Map(pairs) => {
                f.write_str("{")?;
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<&str> for RedisReply {
    /// A bulk string.
    fn from(s: &str) -> Self {
        RedisReply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<i64> for RedisReply {
    fn from(n: i64) -> Self {
        RedisReply::Integer(n)
    }
}

impl From<Bytes> for RedisReply {
    /// A bulk string.
    fn from(b: Bytes) -> Self {
        RedisReply::Bulk(b)
    }
}

impl<T: Into<RedisReply>> From<Option<T>> for RedisReply {
    /// The value, or nil.
    fn from(value: Option<T>) -> Self {
        value.map_or(RedisReply::Nil, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &RedisReply) -> BytesMut {
        let mut dst = BytesMut::new();
        reply.encode(&mut dst);
        dst
    }

    #[test]
    fn replies_encode_as_redis_writes_them() {
        assert_eq!(encoded(&RedisReply::ok()), "+OK\r\n");
        assert_eq!(encoded(&RedisReply::Nil), "$-1\r\n");
        assert_eq!(encoded(&RedisReply::Integer(-7)), ":-7\r\n");
        assert_eq!(encoded(&"hello world".into()), "$11\r\nhello world\r\n");
        assert_eq!(
            encoded(&RedisReply::error("ERR bad\r\nthing")),
            "-ERR bad  thing\r\n",
            "an error stays on its line"
        );
        assert_eq!(
            encoded(&RedisReply::Array(vec![
                "a".into(),
                RedisReply::Nil,
                1.into()
            ])),
            "*3\r\n$1\r\na\r\n$-1\r\n:1\r\n"
        );
    }

    #[test]
    fn replies_print_as_brpc_prints_them() {
        let reply = RedisReply::Array(vec![
            RedisReply::ok(),
            "hello world".into(),
            RedisReply::Integer(1),
            RedisReply::Nil,
            RedisReply::error("WRONGTYPE no"),
        ]);
        assert_eq!(
            reply.to_string(),
            "[OK, \"hello world\", (integer) 1, (nil), (error) WRONGTYPE no]"
        );
    }
}
