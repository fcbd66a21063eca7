//! brpc streaming RPC's `STRM` frames, cut as a baidu_std connection cuts them.
#![no_main]

use brisk::protocol::streaming_rpc::decode_frame;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decode_frame(&mut buf, 64 * 1024) {
            Ok(Some(_)) => assert!(
                buf.len() < before,
                "a frame was cut without consuming bytes"
            ),
            Ok(None) | Err(_) => break,
        }
    }
});
