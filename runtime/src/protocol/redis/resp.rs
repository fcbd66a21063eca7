//! RESP, redis's serialization: cutting and parsing replies (RESP2 and RESP3), and commands
//! (arrays of bulk strings, and inline commands) both ways. Bounds as brpc's: no string or
//! aggregate past `max_body_size`, no nesting deeper than 128.

use bytes::{Bytes, BytesMut};

use super::reply::{blob, header, RedisReply};
use crate::protocol::ParseError;

/// Nesting allowed in a reply (brpc's `redis_max_reply_depth`).
pub(crate) const MAX_DEPTH: usize = 128;

/// The longest line an inline command may take before a newline (redis's
/// `PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub(crate) const MAX_INLINE: usize = 64 * 1024;

/// Why parsing stopped.
#[derive(Debug)]
enum Stop {
    /// The bytes end before the value does.
    NeedMore,
    /// The bytes are not RESP.
    Bad(String),
}

type Step<T> = Result<T, Stop>;

fn bad<T>(reason: impl Into<String>) -> Step<T> {
    Err(Stop::Bad(reason.into()))
}

/// A cursor over bytes that may end mid-value.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], max_len: usize) -> Self {
        Cursor {
            buf,
            pos: 0,
            max_len,
        }
    }

    /// The bytes up to the next CRLF (which is consumed).
    fn line(&mut self) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match memchr(b'\n', rest) {
            Some(end) => {
                if end == 0 || rest[end - 1] != b'\r' {
                    return bad("a line does not end with CRLF");
                }
                if self.pos + end - 1 > self.max_len {
                    return bad(format!(
                        "a message of over {} bytes exceeds max_body_size",
                        self.max_len
                    ));
                }
                self.pos += end + 1;
                Ok(&rest[..end - 1])
            }
            None if self.buf.len() > self.max_len => bad(format!(
                "a message of over {} bytes exceeds max_body_size",
                self.max_len
            )),
            None => Err(Stop::NeedMore),
        }
    }

    /// A decimal integer line.
    fn integer(&mut self) -> Step<i64> {
        let line = self.line()?;
        parse_i64(line).ok_or_else(|| {
            Stop::Bad(format!(
                "`{}` is not a valid 64-bit decimal",
                String::from_utf8_lossy(line)
            ))
        })
    }

    /// A length line: -1 (none) or a length within the limit.
    fn length(&mut self, what: &str) -> Step<Option<usize>> {
        match self.integer()? {
            -1 => Ok(None),
            n if n < 0 => bad(format!("{what} length {n} is negative")),
            n if n as u64 > self.max_len as u64 => bad(format!(
                "{what} length {n} exceeds max_body_size={}",
                self.max_len
            )),
            n => Ok(Some(n as usize)),
        }
    }

    /// `len` bytes and their CRLF.
    fn blob(&mut self, len: usize) -> Step<std::ops::Range<usize>> {
        let end = self.pos.saturating_add(len);
        if end > self.max_len {
            return bad(format!(
                "a message of over {} bytes exceeds max_body_size",
                self.max_len
            ));
        }
        if self.buf.len() < end.saturating_add(2) {
            return Err(Stop::NeedMore);
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return bad("a bulk string does not end with CRLF");
        }
        let range = self.pos..end;
        self.pos = end + 2;
        Ok(range)
    }

    /// One reply: built (slicing strings out of `src`, which the cursor's bytes are) or, without
    /// `src`, only stepped over.
    fn reply(&mut self, src: Option<&Bytes>, depth: usize) -> Step<Option<RedisReply>> {
        if depth > MAX_DEPTH {
            return bad(format!("a reply nests deeper than {MAX_DEPTH}"));
        }
        let Some(&marker) = self.buf.get(self.pos) else {
            return Err(Stop::NeedMore);
        };
        let start = self.pos + 1;
        self.pos = start;
        let slice = |range: std::ops::Range<usize>| src.map(|s| s.slice(range));
        let line_of = |cursor: &mut Self| -> Step<Option<Bytes>> {
            let line = cursor.line()?;
            Ok(slice(start..start + line.len()))
        };
        let built = match marker {
            b'+' => line_of(self)?.map(RedisReply::Status),
            b'-' => line_of(self)?.map(RedisReply::Error),
            b'(' => line_of(self)?.map(RedisReply::BigNumber),
            b':' => {
                let n = self.integer()?;
                src.map(|_| RedisReply::Integer(n))
            }
            b'$' | b'!' | b'=' => match self.length("bulk string")? {
                None => src.map(|_| RedisReply::Nil),
                Some(len) => {
                    let range = self.blob(len)?;
                    match marker {
                        b'$' => slice(range).map(RedisReply::Bulk),
                        b'!' => slice(range).map(RedisReply::Error),
                        _ if len < 4 || self.buf[range.start + 3] != b':' => {
                            return bad("a verbatim string without its format");
                        }
                        _ => {
                            let format = [
                                self.buf[range.start],
                                self.buf[range.start + 1],
                                self.buf[range.start + 2],
                            ];
                            slice(range.start + 4..range.end)
                                .map(|text| RedisReply::Verbatim { format, text })
                        }
                    }
                }
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let Some(count) = self.length("aggregate")? else {
                    return Ok(src.map(|_| RedisReply::Nil));
                };
                let elements = if matches!(marker, b'%' | b'|') {
                    count
                        .checked_mul(2)
                        .ok_or(Stop::Bad("map too large".into()))?
                } else {
                    count
                };
                // Each element takes at least 3 bytes: do not reserve for a count the
                // bytes cannot back.
                let mut items = src.map(|_| Vec::with_capacity(elements.min(1024)));
                for _ in 0..elements {
                    let item = self.reply(src, depth + 1)?;
                    if let (Some(items), Some(item)) = (items.as_mut(), item) {
                        items.push(item);
                    }
                }
                match marker {
                    b'*' => items.map(RedisReply::Array),
                    b'~' => items.map(RedisReply::Set),
                    b'>' => items.map(RedisReply::Push),
                    b'%' => items.map(pairs).map(RedisReply::Map),
                    // RESP3 attributes describe the reply after them: skipped (counted as
                    // a level, so a chain of them is bounded too).
                    _ => return self.reply(src, depth + 1),
                }
            }
            b'_' => {
                if !self.line()?.is_empty() {
                    return bad("a null with content");
                }
                src.map(|_| RedisReply::Nil)
            }
            b'#' => match self.line()? {
                b"t" => src.map(|_| RedisReply::Boolean(true)),
                b"f" => src.map(|_| RedisReply::Boolean(false)),
                _ => return bad("a boolean other than t or f"),
            },
            b',' => {
                let line = self.line()?;
                let x = parse_double(line)
                    .ok_or_else(|| Stop::Bad("a double that does not parse".into()))?;
                src.map(|_| RedisReply::Double(x))
            }
            other => return bad(format!("invalid first byte {other:#04x} of a reply")),
        };
        Ok(built)
    }
}

fn pairs(items: Vec<RedisReply>) -> Vec<(RedisReply, RedisReply)> {
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    pairs
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn parse_i64(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn parse_double(text: &[u8]) -> Option<f64> {
    match text {
        b"inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

fn into_parse_error(stop: Stop) -> Option<ParseError> {
    match stop {
        Stop::NeedMore => None,
        Stop::Bad(reason) => Some(ParseError::new(reason)),
    }
}

/// The length of the first whole reply in `buf`: `Ok(None)` until it has all arrived.
pub(crate) fn reply_len(buf: &[u8], max_body_size: usize) -> Result<Option<usize>, ParseError> {
    let mut cursor = Cursor::new(buf, max_body_size);
    match cursor.reply(None, 0) {
        Ok(_) => Ok(Some(cursor.pos)),
        Err(stop) => into_parse_error(stop).map_or(Ok(None), Err),
    }
}

/// Every reply in `src`, which holds whole replies only.
pub(crate) fn parse_replies(src: &Bytes) -> Result<Vec<RedisReply>, ParseError> {
    let mut cursor = Cursor::new(src, usize::MAX);
    let mut replies = Vec::new();
    while cursor.pos < src.len() {
        match cursor.reply(Some(src), 0) {
            Ok(Some(reply)) => replies.push(reply),
            Ok(None) => unreachable!("a reply is built when given its source"),
            Err(Stop::NeedMore) => return Err(ParseError::new("a reply is cut short")),
            Err(Stop::Bad(reason)) => return Err(ParseError::new(reason)),
        }
    }
    Ok(replies)
}

/// How many commands `buf` holds: it is arrays of bulk strings, back to back (what
/// [`RedisRequest`](super::RedisRequest) encodes).
pub(crate) fn count_commands(buf: &[u8]) -> Result<usize, ParseError> {
    let mut cursor = Cursor::new(buf, usize::MAX);
    let mut count = 0;
    while cursor.pos < buf.len() {
        match cursor.reply(None, 0) {
            Ok(_) => count += 1,
            Err(stop) => {
                return Err(into_parse_error(stop)
                    .unwrap_or_else(|| ParseError::new("a command is cut short")))
            }
        }
    }
    Ok(count)
}

/// Appends one command, an array of bulk strings, to `dst`.
pub(crate) fn encode_command<A: AsRef<[u8]>>(dst: &mut BytesMut, args: &[A]) {
    header(dst, b'*', args.len() as i64);
    for arg in args {
        blob(dst, b'$', arg.as_ref());
    }
}

/// A command a server cut from a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Its arguments, the name first.
    Args(Vec<Bytes>),
    /// An empty line or array: no command, no reply (as redis).
    Empty,
}

/// Cuts the next command off `buf`: an array of bulk strings, or an inline command (a line of
/// words, quotes allowed). `Ok(None)` until it has all arrived.
pub(crate) fn cut_command(
    buf: &mut BytesMut,
    max_body_size: usize,
) -> Result<Option<Command>, ParseError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return cut_inline(buf);
    }
    let mut cursor = Cursor::new(buf, max_body_size);
    let ranges = match command_ranges(&mut cursor) {
        Ok(ranges) => ranges,
        Err(stop) => return into_parse_error(stop).map_or(Ok(None), Err),
    };
    let whole = buf.split_to(cursor.pos).freeze();
    Ok(Some(match ranges {
        Some(ranges) if !ranges.is_empty() => {
            Command::Args(ranges.into_iter().map(|r| whole.slice(r)).collect())
        }
        _ => Command::Empty,
    }))
}

/// The arguments' places in a command array (`None`: a null array).
fn command_ranges(cursor: &mut Cursor<'_>) -> Step<Option<Vec<std::ops::Range<usize>>>> {
    cursor.pos = 1;
    let Some(count) = cursor.length("multibulk")? else {
        return Ok(None);
    };
    let mut ranges = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        match cursor.buf.get(cursor.pos) {
            None => return Err(Stop::NeedMore),
            Some(b'$') => {}
            Some(&other) => return bad(format!("expected '$', got '{}'", other as char)),
        }
        cursor.pos += 1;
        let len = cursor
            .length("bulk")?
            .ok_or_else(|| Stop::Bad("invalid bulk length".into()))?;
        ranges.push(cursor.blob(len)?);
    }
    Ok(Some(ranges))
}

fn cut_inline(buf: &mut BytesMut) -> Result<Option<Command>, ParseError> {
    let Some(end) = memchr(b'\n', buf) else {
        return if buf.len() > MAX_INLINE {
            Err(ParseError::new("too big inline request"))
        } else {
            Ok(None)
        };
    };
    let line = buf.split_to(end + 1);
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let words = split_words(text).map_err(ParseError::new)?;
    Ok(Some(if words.is_empty() {
        Command::Empty
    } else {
        Command::Args(words.into_iter().map(Bytes::from).collect())
    }))
}

/// Splits a command line into words as brpc's `RedisRequest::AddCommand` (and redis-cli) do:
/// on spaces, with `"` or `'` quoting a word that holds spaces and `\` before a quote escaping
/// it.
pub(crate) fn split_words(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut quote: Option<(u8, usize)> = None;
    for (i, &c) in line.iter().enumerate() {
        match (c, quote) {
            (b' ' | b'\t', None) => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (b'"' | b'\'', None) => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                quote = Some((c, i));
            }
            (_, Some((q, _))) if c == q => {
                if word.last() == Some(&b'\\') {
                    word.pop();
                    word.push(c);
                } else {
                    quote = None;
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if let Some((_, at)) = quote {
        return Err(format!("Unmatched quote at offset {at}"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 << 20;

    fn all(bytes: &'static [u8]) -> Vec<RedisReply> {
        parse_replies(&Bytes::from_static(bytes)).unwrap()
    }

    #[test]
    fn every_prefix_of_a_reply_needs_more_and_the_whole_is_cut() {
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"$11\r\nhello world\r\n",
            b":-12\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"-WRONGTYPE Operation against a key\r\n",
            b"*3\r\n$1\r\na\r\n*1\r\n:1\r\n$-1\r\n",
            b"%1\r\n+k\r\n#t\r\n",
            b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n",
            b"=8\r\ntxt:some\r\n",
            b",3.5\r\n",
            b"_\r\n",
            b"$0\r\n\r\n",
        ];
        for reply in replies {
            for cut in 0..reply.len() {
                assert_eq!(
                    reply_len(&reply[..cut], MAX).unwrap(),
                    None,
                    "{reply:?} at {cut}"
                );
            }
            let mut longer = reply.to_vec();
            longer.extend_from_slice(b"+next\r\n");
            assert_eq!(reply_len(&longer, MAX).unwrap(), Some(reply.len()));
        }
    }

    #[test]
    fn replies_parse_to_their_kinds() {
        assert_eq!(
            all(b"+OK\r\n$11\r\nhello world\r\n:1\r\n$-1\r\n-ERR x\r\n"),
            [
                RedisReply::ok(),
                "hello world".into(),
                RedisReply::Integer(1),
                RedisReply::Nil,
                RedisReply::error("ERR x"),
            ]
        );
        assert_eq!(
            all(b"*2\r\n*1\r\n:1\r\n*0\r\n"),
            [RedisReply::Array(vec![
                RedisReply::Array(vec![RedisReply::Integer(1)]),
                RedisReply::Array(vec![])
            ])]
        );
        assert_eq!(
            all(b"%1\r\n+k\r\n#f\r\n~1\r\n,inf\r\n(123\r\n=7\r\nmkd:abc\r\n!3\r\nERR\r\n>1\r\n_\r\n"),
            [
                RedisReply::Map(vec![(RedisReply::status("k"), RedisReply::Boolean(false))]),
                RedisReply::Set(vec![RedisReply::Double(f64::INFINITY)]),
                RedisReply::BigNumber("123".into()),
                RedisReply::Verbatim {
                    format: *b"mkd",
                    text: "abc".into()
                },
                RedisReply::error("ERR"),
                RedisReply::Push(vec![RedisReply::Nil]),
            ]
        );
        assert_eq!(all(b"|1\r\n+a\r\n+b\r\n:5\r\n"), [RedisReply::Integer(5)]);
    }

    #[test]
    fn bad_replies_are_refused_not_waited_for() {
        let bad: &[&[u8]] = &[
            b"?\r\n",
            b"+OK\n",
            b":12a\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"$99999999999\r\n",
            b"*99999999999\r\n",
            b"#x\r\n",
            b",pi\r\n",
            b"=2\r\nab\r\n",
            b"_x\r\n",
        ];
        for reply in bad {
            assert!(reply_len(reply, MAX).is_err(), "{reply:?}");
        }
        let attributes = "|0\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(
            reply_len(attributes.as_bytes(), MAX).is_err(),
            "a chain of attributes"
        );
        let total = "*3\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n";
        assert!(
            reply_len(total.as_bytes(), 16).is_err(),
            "the whole reply is bounded"
        );
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(reply_len(deep.as_bytes(), MAX).is_err());
        let shallow = "*1\r\n".repeat(MAX_DEPTH) + ":1\r\n";
        assert!(reply_len(shallow.as_bytes(), MAX).unwrap().is_some());
        assert!(reply_len(b"$20\r\n", 10).is_err(), "past max_body_size");
        assert!(reply_len(&[b'+'; 64], 10).is_err(), "a line past the limit");
    }

    #[test]
    fn commands_encode_as_brpc_sends_them_and_are_counted() {
        let mut dst = BytesMut::new();
        encode_command(&mut dst, &["SET", "k1", "hello world"]);
        encode_command(&mut dst, &["GET", "k1"]);
        assert_eq!(
            dst,
            "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$11\r\nhello world\r\n*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n"
        );
        assert_eq!(count_commands(&dst).unwrap(), 2);
        assert!(count_commands(&dst[..dst.len() - 1]).is_err());
    }

    #[test]
    fn servers_cut_arrays_and_inline_commands() {
        let mut buf = BytesMut::from(
            &b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\nset k 'a b'\n\r\n*0\r\n*2\r\n$3\r\nGE"[..],
        );
        let args = |words: &[&str]| {
            Command::Args(
                words
                    .iter()
                    .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                    .collect(),
            )
        };
        assert_eq!(
            cut_command(&mut buf, MAX).unwrap(),
            Some(args(&["GET", "a"]))
        );
        assert_eq!(cut_command(&mut buf, MAX).unwrap(), Some(args(&["PING"])));
        assert_eq!(
            cut_command(&mut buf, MAX).unwrap(),
            Some(args(&["set", "k", "a b"]))
        );
        assert_eq!(cut_command(&mut buf, MAX).unwrap(), Some(Command::Empty));
        assert_eq!(cut_command(&mut buf, MAX).unwrap(), Some(Command::Empty));
        assert_eq!(cut_command(&mut buf, MAX).unwrap(), None);
        assert_eq!(buf, "*2\r\n$3\r\nGE", "an incomplete command stays");
        assert!(cut_command(&mut BytesMut::from(&b"*1\r\n:1\r\n"[..]), MAX).is_err());
        assert!(cut_command(&mut BytesMut::from(&b"*1\r\n$-1\r\n"[..]), MAX).is_err());
        assert!(cut_command(&mut BytesMut::from(&b"*1\r\n$9\r\n"[..]), 4).is_err());
        assert!(cut_command(&mut BytesMut::from(&b"GET 'a\r\n"[..]), MAX).is_err());
        assert!(cut_command(
            &mut BytesMut::from(vec![b'a'; MAX_INLINE + 1].as_slice()),
            MAX
        )
        .is_err());
    }

    #[test]
    fn words_split_as_brpc_splits_them() {
        let words = |s: &str| {
            split_words(s.as_bytes()).map(|w| {
                w.into_iter()
                    .map(|w| String::from_utf8(w).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(words("SET a b").unwrap(), ["SET", "a", "b"]);
        assert_eq!(
            words("  SET  'a b'  \"c\\\"d\" ''").unwrap(),
            ["SET", "a b", "c\"d", ""]
        );
        assert_eq!(words("x\"y z\"").unwrap(), ["x", "y z"]);
        assert!(words("SET \"a").is_err());
    }
}
