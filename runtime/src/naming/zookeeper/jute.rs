//! The part of ZooKeeper's client protocol Brisk speaks, as bytes: jute records (big-endian
//! integers, length-prefixed buffers and strings, counted vectors) in length-prefixed packets.
//! No I/O here: [`super::client`] moves the packets.
//!
//! The records are those of `zookeeper.jute` (ZooKeeper 3.4 to 3.9 all speak them): the
//! session handshake, request and reply headers, `getChildren2`, `getData`, `create`, `delete`,
//! pings, `closeSession`, and watch notifications.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Operation codes (`ZooDefs.OpCode`).
pub(crate) mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CLOSE_SESSION: i32 = -11;
}

/// Reserved xids: a watch notification, a ping's reply.
pub(crate) const NOTIFICATION_XID: i32 = -1;
pub(crate) const PING_XID: i32 = -2;

/// Error codes of a reply header (`KeeperException.Code`) that callers tell apart.
pub(crate) mod err {
    pub const MARSHALLING: i32 = -5;
    pub const NO_NODE: i32 = -101;
    pub const NODE_EXISTS: i32 = -110;
    pub const SESSION_EXPIRED: i32 = -112;

    /// ZooKeeper's name for an error code.
    pub fn name(code: i32) -> &'static str {
        match code {
            -1 => "SystemError",
            -4 => "ConnectionLoss",
            -5 => "MarshallingError",
            -6 => "Unimplemented",
            -7 => "OperationTimeout",
            -8 => "BadArguments",
            -101 => "NoNode",
            -102 => "NoAuth",
            -103 => "BadVersion",
            -108 => "NoChildrenForEphemerals",
            -110 => "NodeExists",
            -111 => "NotEmpty",
            -112 => "SessionExpired",
            -114 => "InvalidACL",
            -115 => "AuthFailed",
            _ => "unknown",
        }
    }
}

/// `CreateMode` flags.
pub(crate) const PERSISTENT: i32 = 0;
pub(crate) const EPHEMERAL: i32 = 1;

/// The largest packet accepted from a server (its default `jute.maxbuffer` is 1 MiB, plus
/// room).
pub(crate) const MAX_PACKET: usize = 4 << 20;

/// A record that does not parse: too short, or a length out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

type Parsed<T> = Result<T, Malformed>;

/// Writes jute's primitives.
#[derive(Debug, Default)]
pub(crate) struct Writer(BytesMut);

impl Writer {
    pub(crate) fn int(&mut self, value: i32) -> &mut Self {
        self.0.put_i32(value);
        self
    }

    pub(crate) fn long(&mut self, value: i64) -> &mut Self {
        self.0.put_i64(value);
        self
    }

    pub(crate) fn boolean(&mut self, value: bool) -> &mut Self {
        self.0.put_u8(u8::from(value));
        self
    }

    pub(crate) fn buffer(&mut self, value: &[u8]) -> &mut Self {
        self.0.put_i32(value.len() as i32);
        self.0.put_slice(value);
        self
    }

    pub(crate) fn string(&mut self, value: &str) -> &mut Self {
        self.buffer(value.as_bytes())
    }

    /// The record as a packet: its length first.
    pub(crate) fn packet(self) -> Bytes {
        let mut packet = BytesMut::with_capacity(4 + self.0.len());
        packet.put_i32(self.0.len() as i32);
        packet.put_slice(&self.0);
        packet.freeze()
    }
}

/// Reads jute's primitives off a packet's payload.
#[derive(Debug)]
pub(crate) struct Reader(Bytes);

impl Reader {
    pub(crate) fn new(payload: Bytes) -> Reader {
        Reader(payload)
    }

    pub(crate) fn int(&mut self) -> Parsed<i32> {
        if self.0.remaining() < 4 {
            return Err(Malformed("truncated int"));
        }
        Ok(self.0.get_i32())
    }

    pub(crate) fn long(&mut self) -> Parsed<i64> {
        if self.0.remaining() < 8 {
            return Err(Malformed("truncated long"));
        }
        Ok(self.0.get_i64())
    }

    /// A buffer; `-1` (null) reads as empty.
    pub(crate) fn buffer(&mut self) -> Parsed<Bytes> {
        let len = self.int()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        let len = len as usize;
        if self.0.remaining() < len {
            return Err(Malformed("truncated buffer"));
        }
        Ok(self.0.split_to(len))
    }

    pub(crate) fn string(&mut self) -> Parsed<String> {
        let bytes = self.buffer()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Malformed("a string that is not UTF-8"))
    }

    /// A vector of strings; `-1` (null) reads as empty.
    pub(crate) fn strings(&mut self) -> Parsed<Vec<String>> {
        let count = self.int()?;
        if count < 0 {
            return Ok(Vec::new());
        }
        // Each string takes 4 bytes at least: a count past that is a lie.
        if count as usize > self.0.remaining() / 4 {
            return Err(Malformed("a vector longer than its packet"));
        }
        (0..count).map(|_| self.string()).collect()
    }
}

/// Cuts the next packet's payload off `buf` once it is whole.
pub(crate) fn cut_packet(buf: &mut BytesMut) -> Parsed<Option<Bytes>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > MAX_PACKET {
        return Err(Malformed("a packet length out of range"));
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// `ConnectRequest` for a session of `timeout_ms`: a new one, or `resume`'s again (on
/// another connection, before it expires).
pub(crate) fn connect_request(timeout_ms: i32, resume: Option<&Resume>) -> Bytes {
    let mut w = Writer::default();
    w.int(0); // protocolVersion
    match resume {
        Some(resume) => {
            w.long(resume.last_zxid)
                .int(timeout_ms)
                .long(resume.id)
                .buffer(&resume.password);
        }
        None => {
            w.long(0).int(timeout_ms).long(0).buffer(&[0; 16]);
        }
    }
    w.boolean(false); // readOnly
    w.packet()
}

/// What it takes to resume a session on a new connection: its id and password, and the last
/// transaction the client saw (so a server that is behind it does not answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) id: i64,
    pub(crate) password: Bytes,
    pub(crate) last_zxid: i64,
}

/// `ConnectResponse`: the session the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The session's timeout as negotiated, in milliseconds (0: the session asked for has
    /// expired, or the server refused a new one).
    pub(crate) timeout_ms: i32,
    pub(crate) id: i64,
    pub(crate) password: Bytes,
}

pub(crate) fn connect_response(payload: Bytes) -> Parsed<Session> {
    let mut r = Reader::new(payload);
    let _protocol_version = r.int()?;
    let timeout_ms = r.int()?;
    let id = r.long()?;
    let password = r.buffer()?;
    // `readOnly` follows on servers since 3.4; older ones end here.
    Ok(Session {
        timeout_ms,
        id,
        password,
    })
}

/// A request: `RequestHeader` (xid, type) and the body `fill` writes.
pub(crate) fn request(xid: i32, op: i32, fill: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::default();
    w.int(xid).int(op);
    fill(&mut w);
    w.packet()
}

/// `getChildren2(path, watch)`.
pub(crate) fn get_children(xid: i32, path: &str, watch: bool) -> Bytes {
    request(xid, op::GET_CHILDREN2, |w| {
        w.string(path).boolean(watch);
    })
}

/// `getData(path, watch)`.
pub(crate) fn get_data(xid: i32, path: &str, watch: bool) -> Bytes {
    request(xid, op::GET_DATA, |w| {
        w.string(path).boolean(watch);
    })
}

/// `exists(path, watch)`.
pub(crate) fn exists(xid: i32, path: &str, watch: bool) -> Bytes {
    request(xid, op::EXISTS, |w| {
        w.string(path).boolean(watch);
    })
}

/// `create(path, data)` open to anyone (`world:anyone`, all permissions), with `flags`.
pub(crate) fn create(xid: i32, path: &str, data: &[u8], flags: i32) -> Bytes {
    request(xid, op::CREATE, |w| {
        w.string(path).buffer(data);
        w.int(1) // one ACL
            .int(31) // Perms.ALL
            .string("world")
            .string("anyone");
        w.int(flags);
    })
}

/// `delete(path)`, any version.
pub(crate) fn delete(xid: i32, path: &str) -> Bytes {
    request(xid, op::DELETE, |w| {
        w.string(path).int(-1);
    })
}

/// A reply's header: which request, and its error code (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyHeader {
    pub(crate) xid: i32,
    /// The last transaction the server had applied (-1 on notifications).
    pub(crate) zxid: i64,
    pub(crate) err: i32,
}

pub(crate) fn reply_header(r: &mut Reader) -> Parsed<ReplyHeader> {
    let xid = r.int()?;
    let zxid = r.long()?;
    let err = r.int()?;
    Ok(ReplyHeader { xid, zxid, err })
}

/// A watch notification (`WatcherEvent`): what happened, to which path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchEvent {
    /// `EventType`: 1 created, 2 deleted, 3 data changed, 4 children changed.
    pub(crate) kind: i32,
    pub(crate) path: String,
}

pub(crate) fn watch_event(r: &mut Reader) -> Parsed<WatchEvent> {
    let kind = r.int()?;
    let _state = r.int()?;
    let path = r.string()?;
    Ok(WatchEvent { kind, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_bytes() {
        let packet = connect_request(10_000, None);
        let expected: Vec<u8> = [
            &45i32.to_be_bytes()[..], // length
            &0i32.to_be_bytes(),      // protocolVersion
            &0i64.to_be_bytes(),      // lastZxidSeen
            &10_000i32.to_be_bytes(), // timeOut
            &0i64.to_be_bytes(),      // sessionId
            &16i32.to_be_bytes(),     // passwd length
            &[0u8; 16],               // passwd
            &[0u8],                   // readOnly
        ]
        .concat();
        assert_eq!(&packet[..], &expected[..]);

        // Resuming sends the session, its password and the last zxid seen.
        let resume = Resume {
            id: 0x1234,
            password: Bytes::from_static(&[7; 16]),
            last_zxid: 99,
        };
        let packet = connect_request(4000, Some(&resume));
        let expected: Vec<u8> = [
            &45i32.to_be_bytes()[..],
            &0i32.to_be_bytes(),
            &99i64.to_be_bytes(),
            &4000i32.to_be_bytes(),
            &0x1234i64.to_be_bytes(),
            &16i32.to_be_bytes(),
            &[7u8; 16],
            &[0u8],
        ]
        .concat();
        assert_eq!(&packet[..], &expected[..]);
    }

    #[test]
    fn create_request_bytes() {
        let packet = create(7, "/a", b"v", EPHEMERAL);
        let mut expected = Vec::new();
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&op::CREATE.to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(b"/a");
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(b"v");
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&31i32.to_be_bytes());
        expected.extend_from_slice(&5i32.to_be_bytes());
        expected.extend_from_slice(b"world");
        expected.extend_from_slice(&6i32.to_be_bytes());
        expected.extend_from_slice(b"anyone");
        expected.extend_from_slice(&EPHEMERAL.to_be_bytes());
        let mut with_len = (expected.len() as i32).to_be_bytes().to_vec();
        with_len.extend_from_slice(&expected);
        assert_eq!(&packet[..], &with_len[..]);
    }

    #[test]
    fn packets_are_cut_whole_and_lengths_checked() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, b'a', b'b'][..]);
        assert_eq!(cut_packet(&mut buf), Ok(None));
        buf.put_u8(b'c');
        assert_eq!(cut_packet(&mut buf), Ok(Some(Bytes::from_static(b"abc"))));
        assert!(buf.is_empty());
        let mut bad = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(cut_packet(&mut bad).is_err());
        let mut huge = BytesMut::from(&[0x7fu8, 0xff, 0xff, 0xff][..]);
        assert!(cut_packet(&mut huge).is_err());
    }

    #[test]
    fn replies_parse_and_truncation_is_malformed() {
        let mut w = Writer::default();
        w.int(5).long(99).int(err::NO_NODE);
        let mut packet = w.packet();
        packet.advance(4);
        let mut r = Reader::new(packet);
        assert_eq!(
            reply_header(&mut r),
            Ok(ReplyHeader {
                xid: 5,
                zxid: 99,
                err: err::NO_NODE
            })
        );

        let mut w = Writer::default();
        w.int(2).string("b").string("a");
        let mut packet = w.packet();
        packet.advance(4);
        assert_eq!(
            Reader::new(packet).strings(),
            Ok(vec!["b".to_owned(), "a".to_owned()])
        );
        // A count no packet could hold, a buffer past the end, bad UTF-8.
        let mut lying = Reader::new(Bytes::from_static(&[0x7f, 0, 0, 0]));
        assert!(lying.strings().is_err());
        let mut short = Reader::new(Bytes::from_static(&[0, 0, 0, 9, b'x']));
        assert!(short.buffer().is_err());
        let mut not_utf8 = Reader::new(Bytes::from_static(&[0, 0, 0, 1, 0xff]));
        assert!(not_utf8.string().is_err());
        let mut null = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert_eq!(null.buffer(), Ok(Bytes::new()));
    }

    #[test]
    fn sessions_and_events_parse() {
        let mut w = Writer::default();
        w.int(0)
            .int(4000)
            .long(0x1234)
            .buffer(&[7; 16])
            .boolean(false);
        let mut packet = w.packet();
        packet.advance(4);
        assert_eq!(
            connect_response(packet),
            Ok(Session {
                timeout_ms: 4000,
                id: 0x1234,
                password: Bytes::from_static(&[7; 16]),
            })
        );
        let mut w = Writer::default();
        w.int(4).int(3).string("/services/echo");
        let mut packet = w.packet();
        packet.advance(4);
        assert_eq!(
            watch_event(&mut Reader::new(packet)),
            Ok(WatchEvent {
                kind: 4,
                path: "/services/echo".to_owned()
            })
        );
    }
}
