//! How messages become payload bytes and back.
//!
//! Generated code names a codec type per service (`::brisk::codegen::Prost` for `.proto`
//! services). A codec implements [`MessageCodec<T>`] for each message type it can carry.

use bytes::{Bytes, BytesMut};

/// Encodes and decodes messages of type `T` for the wire.
///
/// Errors are plain strings; the runtime turns them into the brpc code that fits the side that
/// failed (EREQUEST for an undecodable request, ERESPONSE for an undecodable response, ...).
pub trait MessageCodec<T>: 'static {
    /// Appends the encoding of `message` to `dst`.
    fn encode(message: &T, dst: &mut BytesMut) -> Result<(), String>;
    /// The exact or estimated encoded size of `message`, used to size buffers.
    fn encoded_len(message: &T) -> usize;
    /// Decodes a message from `src`.
    fn decode(src: Bytes) -> Result<T, String>;
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
