//! How messages become payload bytes and back.
//!
//! Generated code names a codec type per service (`::brisk::codegen::Prost` for `.proto`
//! services and `#[brisk::service]` traits of prost messages, [`Json`] for
//! `#[brisk::service(codec = "json")]` traits of serde types). A codec implements
//! [`MessageCodec<T>`] for each message type it can carry. [`Raw`] carries bytes encoded
//! elsewhere, for tools that encode messages themselves.
//!
//! JSON is the only serde codec: it needs the `json` feature of `brisk` (on by default).

use bytes::{Bytes, BytesMut};

/// Encodes and decodes messages of type `T` for the wire.
///
/// Errors are plain strings; the runtime turns them into the brpc code that fits the side that
/// failed (EREQUEST for an undecodable request, ERESPONSE for an undecodable response, ...).
#[diagnostic::on_unimplemented(
    message = "the codec `{Self}` cannot carry `{T}`",
    label = "`{T}` is not a message `{Self}` encodes",
    note = "`Prost`, the default codec, carries protobuf messages: types that derive `prost::Message`",
    note = "`Json` carries serde types (`Serialize` + `DeserializeOwned`): for a `#[brisk::service]` trait of serde types, write `#[brisk::service(codec = \"json\")]`"
)]
pub trait MessageCodec<T>: 'static {
    /// What baidu_std's `RpcMeta.content_type` says about payloads of this codec, with brpc's
    /// numbers: 0 protobuf (the default), 1 JSON.
    const CONTENT_TYPE: i32 = 0;
    /// Appends the encoding of `message` to `dst`.
    fn encode(message: &T, dst: &mut BytesMut) -> Result<(), String>;
    /// The exact or estimated encoded size of `message`, used to size buffers.
    fn encoded_len(message: &T) -> usize;
    /// Decodes a message from `src`.
    fn decode(src: Bytes) -> Result<T, String>;

    /// The encoding of `message` as one buffer: what the runtime sends. The default encodes
    /// into a buffer of `encoded_len` bytes; a codec whose messages already are bytes returns
    /// them without copying.
    fn encode_to_bytes(message: &T) -> Result<Bytes, String> {
        let mut buf = BytesMut::with_capacity(Self::encoded_len(message));
        Self::encode(message, &mut buf)?;
        Ok(buf.freeze())
    }
}

/// The protobuf codec, for any `prost` message.
///
/// ```
/// use brisk::codec::{MessageCodec, Prost};
/// use bytes::BytesMut;
/// let mut buf = BytesMut::new();
/// <Prost as MessageCodec<String>>::encode(&"hi".to_string(), &mut buf).unwrap();
/// let back: String = <Prost as MessageCodec<String>>::decode(buf.freeze()).unwrap();
/// assert_eq!(back, "hi");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Prost;

#[diagnostic::do_not_recommend]
impl<T: prost::Message + Default> MessageCodec<T> for Prost {
    fn encode(message: &T, dst: &mut BytesMut) -> Result<(), String> {
        message.encode(dst).map_err(|e| e.to_string())
    }

    fn encoded_len(message: &T) -> usize {
        message.encoded_len()
    }

    fn decode(src: Bytes) -> Result<T, String> {
        T::decode(src).map_err(|e| e.to_string())
    }
}

/// The identity codec: payloads are [`Bytes`] already encoded by the caller, sent as they are
/// and handed back undecoded. It is for tools that encode messages themselves (a load tester
/// driven by a `.proto` file and dynamic messages, a proxy), with `content_type` 0 (protobuf).
///
/// ```
/// use brisk::codec::{MessageCodec, Raw};
/// use bytes::{Bytes, BytesMut};
/// let mut buf = BytesMut::from(&b"head:"[..]);
/// <Raw as MessageCodec<Bytes>>::encode(&Bytes::from_static(b"\x0a\x02hi"), &mut buf).unwrap();
/// assert_eq!(&buf[..], b"head:\x0a\x02hi");
/// let back = <Raw as MessageCodec<Bytes>>::decode(Bytes::from_static(b"\x0a\x02hi")).unwrap();
/// assert_eq!(back, Bytes::from_static(b"\x0a\x02hi"));
/// // What the runtime sends is the caller's buffer itself, not a copy.
/// let payload = Bytes::from(vec![0x0a, 0x02, b'h', b'i']);
/// let sent = <Raw as MessageCodec<Bytes>>::encode_to_bytes(&payload).unwrap();
/// assert_eq!(sent.as_ptr(), payload.as_ptr());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl MessageCodec<Bytes> for Raw {
    fn encode(message: &Bytes, dst: &mut BytesMut) -> Result<(), String> {
        dst.extend_from_slice(message);
        Ok(())
    }

    fn encoded_len(message: &Bytes) -> usize {
        message.len()
    }

    fn decode(src: Bytes) -> Result<Bytes, String> {
        Ok(src)
    }

    fn encode_to_bytes(message: &Bytes) -> Result<Bytes, String> {
        Ok(message.clone())
    }
}

/// The JSON codec, for any serde type: what `#[brisk::service(codec = "json")]` uses. Requests
/// and responses go over baidu_std as JSON text, with `content_type` 1 (brpc's JSON) in the
/// request meta.
///
/// ```
/// use brisk::codec::{Json, MessageCodec};
/// use bytes::BytesMut;
/// let mut buf = BytesMut::new();
/// <Json as MessageCodec<Vec<u32>>>::encode(&vec![1, 2], &mut buf).unwrap();
/// assert_eq!(&buf[..], b"[1,2]");
/// let back: Vec<u32> = <Json as MessageCodec<Vec<u32>>>::decode(buf.freeze()).unwrap();
/// assert_eq!(back, [1, 2]);
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned> MessageCodec<T> for Json {
    const CONTENT_TYPE: i32 = 1;

    fn encode(message: &T, dst: &mut BytesMut) -> Result<(), String> {
        use bytes::BufMut as _;
        serde_json::to_writer(dst.writer(), message).map_err(|e| e.to_string())
    }

    fn encoded_len(_message: &T) -> usize {
        // Unknown without encoding; a guess that fits small messages in one allocation.
        64
    }

    fn decode(src: Bytes) -> Result<T, String> {
        serde_json::from_slice(&src).map_err(|e| e.to_string())
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_content_types() {
        let mut buf = BytesMut::new();
        let value = vec![("a".to_owned(), 1u8)];
        <Json as MessageCodec<Vec<(String, u8)>>>::encode(&value, &mut buf).unwrap();
        assert_eq!(&buf[..], br#"[["a",1]]"#);
        let back: Vec<(String, u8)> =
            <Json as MessageCodec<Vec<(String, u8)>>>::decode(buf.freeze()).unwrap();
        assert_eq!(back, value);
        let error =
            <Json as MessageCodec<Vec<u8>>>::decode(Bytes::from_static(b"{nope")).unwrap_err();
        assert!(error.contains("line 1"), "{error}");
        assert_eq!(<Json as MessageCodec<u8>>::CONTENT_TYPE, 1);
        assert_eq!(<Prost as MessageCodec<String>>::CONTENT_TYPE, 0);
    }
}
