//! brpc 1.17's streaming RPC frames (`tests/golden/streaming_rpc/`, captured from its
//! `streaming_echo_c++` example; the README there decodes each): Brisk's `STRM` codec decodes
//! every captured frame to the fields brpc wrote, and encodes the same frames to brpc's bytes.

use brisk::protocol::baidu_std::{self, StreamSettings};
use brisk::protocol::streaming_rpc::{
    decode_frame, segments, ConsumedCounter, Decoded, FrameError, Reassembly, SendWindow,
    StreamFrame, DEFAULT_MAX_BUF_SIZE, DEFAULT_MAX_SEGMENT_SIZE,
};
use bytes::{Bytes, BytesMut};

/// The client's stream id and the server's in the main samples.
const CLIENT: i64 = 0;
const SERVER: i64 = 146;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(brisk_tests::wire_sample(&format!(
        "streaming_rpc/{name}.bin"
    )))
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Decodes one captured frame, checking it is exactly one frame.
fn decode(name: &str) -> StreamFrame {
    let mut buf = BytesMut::from(&sample(name)[..]);
    let decoded = decode_frame(&mut buf, 1 << 20)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: incomplete"));
    assert!(buf.is_empty(), "{name}: bytes after the frame");
    match decoded {
        Decoded::Frame(frame) => frame,
        Decoded::Malformed(bad) => panic!("{name}: {bad:?}"),
    }
}

/// Checks that `frame` decodes from, and encodes to, sample `name`.
fn golden(name: &str, frame: StreamFrame) {
    assert_eq!(decode(name), frame, "{name}");
    let mut encoded = BytesMut::new();
    frame.encode(&mut encoded);
    assert_eq!(&encoded[..], &sample(name)[..], "{name}: Brisk's bytes");
}

fn data(
    stream_id: i64,
    source_stream_id: i64,
    has_continuation: bool,
    bytes: &'static [u8],
) -> StreamFrame {
    StreamFrame::Data {
        stream_id,
        source_stream_id,
        has_continuation,
        data: Bytes::from_static(bytes),
    }
}

#[test]
fn client_data_frames_are_brpcs() {
    for name in ["c2s_01_strm_data", "c2s_03_strm_data"] {
        golden(
            name,
            data(SERVER, CLIENT, false, b"abcdefghijklmnopqrstuvwxyz"),
        );
    }
    for name in ["c2s_02_strm_data", "c2s_04_strm_data"] {
        golden(name, data(SERVER, CLIENT, false, b"0123456789"));
    }
}

#[test]
fn feedback_frames_carry_running_totals() {
    // The server consumed the client's four messages (26, 10, 26, 10 bytes) and reported its
    // running total after each.
    let mut consumed = ConsumedCounter::default();
    for (name, message_len) in [
        ("s2c_01_strm_feedback", 26),
        ("s2c_02_strm_feedback", 10),
        ("s2c_03_strm_feedback", 26),
        ("s2c_04_strm_feedback", 10),
    ] {
        golden(
            name,
            StreamFrame::Feedback {
                stream_id: CLIENT,
                source_stream_id: SERVER,
                consumed_size: consumed.consume(message_len),
            },
        );
    }
    assert_eq!(consumed.total(), 72);
    // The client's window opens by what each total reports.
    let mut window = SendWindow::new(DEFAULT_MAX_BUF_SIZE);
    for len in [26, 10, 26, 10] {
        assert!(window.try_write(len));
    }
    assert!(!window.on_feedback(0));
    assert!(!window.on_feedback(36)); // never full: nothing to wake
    assert_eq!(window.unconsumed(), 36);
}

#[test]
fn close_frames_are_brpcs() {
    golden(
        "c2s_05_strm_close",
        StreamFrame::Close {
            stream_id: SERVER,
            source_stream_id: CLIENT,
        },
    );
    golden(
        "s2c_05_strm_close",
        StreamFrame::Close {
            stream_id: CLIENT,
            source_stream_id: SERVER,
        },
    );
}

#[test]
fn a_frame_for_an_unknown_stream_gets_brpcs_rst() {
    let request = decode("err_req_unknown_stream");
    assert_eq!(request, data(999, 5, false, b"x"));
    let reply = request.reset_reply().expect("DATA is answered");
    golden("err_resp_unknown_stream", reply);
    // A CLOSE for a stream already gone is answered likewise: the README's RST from the
    // capture's first run, `5354524d 00000004 00000004 0800 1801`.
    let close = StreamFrame::Close {
        stream_id: 0,
        source_stream_id: 0,
    };
    let mut rst = BytesMut::new();
    close
        .reset_reply()
        .expect("CLOSE is answered")
        .encode(&mut rst);
    assert_eq!(&rst[..], b"STRM\0\0\0\x04\0\0\0\x04\x08\x00\x18\x01");
    // FEEDBACK is not: the stream may have closed with feedback in flight.
    assert_eq!(decode("s2c_01_strm_feedback").reset_reply(), None);
}

#[test]
fn the_opening_call_and_its_answer_inside_a_data_frame() {
    // The request is plain baidu_std, its meta carrying the client's stream settings.
    let mut buf = BytesMut::from(&sample("c2s_00_rpc_request")[..]);
    let request = baidu_std::decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
    let settings = request
        .meta
        .stream_settings
        .clone()
        .expect("stream_settings");
    assert_eq!(
        settings,
        StreamSettings {
            stream_id: CLIENT,
            need_feedback: Some(true),
            writable: Some(false),
            extra_stream_ids: vec![],
        }
    );
    // The response is a whole baidu_std frame, the data of a DATA frame to the client's stream.
    let StreamFrame::Data {
        stream_id,
        source_stream_id,
        has_continuation,
        data,
    } = decode("s2c_00_strm_data_rpc_response")
    else {
        panic!("not DATA");
    };
    assert_eq!(
        (stream_id, source_stream_id, has_continuation),
        (CLIENT, SERVER, false)
    );
    let mut inner = BytesMut::from(&data[..]);
    let response = baidu_std::decode_frame(&mut inner, 1 << 20)
        .unwrap()
        .unwrap();
    assert!(inner.is_empty());
    assert_eq!(response.meta.correlation_id, request.meta.correlation_id);
    assert_eq!(
        response.meta.stream_settings,
        Some(StreamSettings {
            stream_id: SERVER,
            need_feedback: Some(true),
            writable: Some(true),
            extra_stream_ids: vec![],
        })
    );
    assert_eq!(&response.body[2..], b"Accepted stream");
    // And Brisk wraps it in the same bytes.
    let mut wrapped = BytesMut::new();
    StreamFrame::Data {
        stream_id: CLIENT,
        source_stream_id: SERVER,
        has_continuation: false,
        data,
    }
    .encode(&mut wrapped);
    assert_eq!(&wrapped[..], &sample("s2c_00_strm_data_rpc_response")[..]);
}

#[test]
fn a_message_over_the_segment_size_is_split_as_brpc_splits_it() {
    // brpc's client with -stream_write_max_segment_size=10 (both stream ids 0 here).
    let frames: Vec<StreamFrame> =
        segments(0, 0, Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"), 10).collect();
    let names = [
        "seg_c2s_01_strm_data",
        "seg_c2s_02_strm_data",
        "seg_c2s_03_strm_data",
    ];
    assert_eq!(frames.len(), names.len());
    let mut messages = Reassembly::new(1 << 20);
    let mut delivered = Vec::new();
    for (frame, name) in frames.into_iter().zip(names) {
        golden(name, frame.clone());
        if let StreamFrame::Data {
            data,
            has_continuation,
            ..
        } = frame
        {
            delivered.extend(messages.push(data, has_continuation).unwrap());
        }
    }
    assert_eq!(
        delivered,
        [Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz")]
    );
    // Exactly the segment size: one frame.
    let one: Vec<_> = segments(0, 0, Bytes::from_static(b"0123456789"), 10).collect();
    assert_eq!(one.len(), 1);
    golden("seg_c2s_04_strm_data", one[0].clone());
    // The feedback counts delivered messages, not frames.
    assert_eq!(
        decode("seg_s2c_01_strm_feedback"),
        StreamFrame::Feedback {
            stream_id: 0,
            source_stream_id: 0,
            consumed_size: 26
        }
    );
    // At brpc's default segment size, the same message is one frame.
    let default: Vec<_> = segments(
        SERVER,
        CLIENT,
        Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"),
        DEFAULT_MAX_SEGMENT_SIZE,
    )
    .collect();
    golden("c2s_01_strm_data", default[0].clone());
}

#[test]
fn whole_captured_streams_cut_into_their_frames() {
    // Each direction's bytes as they crossed the wire: baidu_std and STRM frames interleaved,
    // cut by their magic. Every STRM frame decodes.
    for (name, expected_strm) in [
        ("stream_c2s", 5),
        ("stream_s2c", 6),
        ("seg_stream_c2s", 5),
        ("seg_stream_s2c", 4),
    ] {
        let mut buf = BytesMut::from(&sample(name)[..]);
        let mut strm = 0;
        while !buf.is_empty() {
            if buf.starts_with(b"PRPC") {
                baidu_std::decode_frame(&mut buf, 1 << 20)
                    .unwrap()
                    .expect("whole");
            } else {
                let decoded = decode_frame(&mut buf, 1 << 20)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .expect("whole");
                assert!(matches!(decoded, Decoded::Frame(_)), "{name}: {decoded:?}");
                strm += 1;
            }
        }
        assert_eq!(strm, expected_strm, "{name}");
    }
}

#[test]
fn a_truncated_or_foreign_frame_is_refused() {
    let whole = sample("c2s_01_strm_data");
    for cut in 0..whole.len() {
        let mut part = BytesMut::from(&whole[..cut]);
        assert_eq!(decode_frame(&mut part, 1 << 20), Ok(None), "{cut}");
    }
    let mut prpc = BytesMut::from(&sample("c2s_00_rpc_request")[..]);
    assert!(matches!(
        decode_frame(&mut prpc, 1 << 20),
        Err(FrameError::BadMagic(_))
    ));
    let mut small = BytesMut::from(&whole[..]);
    assert!(matches!(
        decode_frame(&mut small, 10),
        Err(FrameError::TooBig { .. })
    ));
}
