//! brpc's streaming RPC between Brisk's client and server: streams opened by a baidu_std call,
//! accepted in the handler, carrying ordered messages both ways under flow control, closed from
//! either side, failed by a reset or a broken connection. The `golden` module checks Brisk's
//! frames against brpc 1.17's (`tests/golden/streaming_rpc/`, captured from its
//! `streaming_echo_c++` example), apart from stream and correlation ids.

use std::time::Duration;

use brisk::protocol::streaming_rpc::{decode_frame, Decoded, StreamFrame};
use brisk::stream_rpc::{Stream, StreamOptions};
use brisk::{errno, Channel, Controller, Server, ServerContext, Status};
use brisk_examples::echo::{
    EchoRequest, EchoResponse, EchoService, EchoServiceClient, EchoServiceServer,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Hang guard for waits that must end; never how long something is expected to take.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// `example.EchoService` whose handler accepts each call's stream (unless told not to) with
/// the options given, and hands the server's end to the test.
struct StreamHost {
    accept: Option<StreamOptions>,
    streams: mpsc::UnboundedSender<Stream>,
}

impl EchoService for StreamHost {
    async fn echo(
        &self,
        cntl: &mut ServerContext,
        _request: EchoRequest,
    ) -> Result<EchoResponse, Status> {
        if let Some(options) = &self.accept {
            let stream = cntl.accept_stream(options.clone())?;
            let _ = self.streams.send(stream);
        }
        Ok(EchoResponse {
            message: "Accepted stream".into(),
        })
    }
}

/// A server whose handler accepts streams with `accept` (or none), and the streams it accepts.
async fn host(accept: Option<StreamOptions>) -> (Server, mpsc::UnboundedReceiver<Stream>) {
    let (streams, accepted) = mpsc::unbounded_channel();
    let server = Server::builder()
        .add_service(EchoServiceServer::new(StreamHost { accept, streams }))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    (server, accepted)
}

async fn client_of(server: &Server) -> EchoServiceClient {
    client_at(&server.local_addr().to_string()).await
}

/// A client of `address`, its calls bounded by the hang guard.
async fn client_at(address: &str) -> EchoServiceClient {
    let channel = Channel::builder()
        .timeout(HANG_GUARD)
        .connect(address)
        .await
        .expect("channel");
    EchoServiceClient::new(channel)
}

/// A raw peer on a loopback port: `serve` gets the first connection made to it. Its address,
/// and what `serve` returns.
async fn raw_peer<T, F>(
    serve: impl FnOnce(TcpStream) -> F + Send + 'static,
) -> (String, tokio::task::JoinHandle<T>)
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        serve(socket).await
    });
    (address, peer)
}

/// Opens a stream with one call; the client's end and the server's.
async fn open(
    client: &EchoServiceClient,
    accepted: &mut mpsc::UnboundedReceiver<Stream>,
    options: StreamOptions,
) -> (Stream, Stream) {
    let mut cntl = Controller::new();
    let stream = Stream::create(&mut cntl, options);
    let response = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "I'm a RPC to connect stream".into(),
            },
        )
        .await
        .expect("the call opens the stream");
    assert_eq!(response.message, "Accepted stream");
    let server_end = tokio::time::timeout(HANG_GUARD, accepted.recv())
        .await
        .expect("accepted within the hang guard")
        .expect("a stream");
    (stream, server_end)
}

async fn next(stream: &mut Stream) -> Option<Result<Bytes, Status>> {
    tokio::time::timeout(HANG_GUARD, stream.next())
        .await
        .expect("a message or the end within the hang guard")
}

/// Sends `count` numbered messages, then reads `count` from the other direction, checking
/// their order.
async fn exchange(mut stream: Stream, count: u64) -> Stream {
    let writer = stream.writer();
    let sending = tokio::spawn(async move {
        for seq in 0..count {
            writer
                .send(Bytes::copy_from_slice(&seq.to_be_bytes()))
                .await
                .expect("send");
        }
    });
    for expected in 0..count {
        let message = next(&mut stream)
            .await
            .expect("not ended")
            .expect("message");
        assert_eq!(&message[..], &expected.to_be_bytes(), "message {expected}");
    }
    sending.await.expect("sender");
    stream
}

#[tokio::test]
async fn messages_keep_their_order_both_ways_at_once() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (client_end, server_end) = open(&client, &mut accepted, StreamOptions::default()).await;
    let count = 100_000;
    let (client_end, server_end) = tokio::join!(
        tokio::spawn(exchange(client_end, count)),
        tokio::spawn(exchange(server_end, count)),
    );
    let (client_end, server_end) = (client_end.unwrap(), server_end.unwrap());
    assert!(!client_end.is_closed() && !server_end.is_closed());
}

#[tokio::test]
async fn a_message_larger_than_a_segment_arrives_whole() {
    let small_segments = StreamOptions::default().max_segment_size(1000);
    let (server, mut accepted) = host(Some(small_segments.clone())).await;
    let client = client_of(&server).await;
    let (mut client_end, mut server_end) = open(&client, &mut accepted, small_segments).await;
    let big: Bytes = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    client_end.send(big.clone()).await.unwrap();
    client_end.send(Bytes::from_static(b"after")).await.unwrap();
    assert_eq!(next(&mut server_end).await.unwrap().unwrap(), big);
    assert_eq!(&next(&mut server_end).await.unwrap().unwrap()[..], b"after");
    server_end.send(big.clone()).await.unwrap();
    assert_eq!(next(&mut client_end).await.unwrap().unwrap(), big);
}

#[tokio::test]
async fn the_client_closing_ends_the_servers_stream_after_its_messages() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (client_end, mut server_end) = open(&client, &mut accepted, StreamOptions::default()).await;
    client_end
        .send(Bytes::from_static(b"last words"))
        .await
        .unwrap();
    // The server answers CLOSE with CLOSE, which ends the wait.
    tokio::time::timeout(HANG_GUARD, client_end.close_and_wait())
        .await
        .expect("the server answers the close");
    assert_eq!(
        &next(&mut server_end).await.unwrap().unwrap()[..],
        b"last words"
    );
    assert!(next(&mut server_end).await.is_none(), "closed: no error");
    let status = server_end
        .send(Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::ECLOSE, "{status}");
    let status = client_end
        .send(Bytes::from_static(b"late"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EINVAL, "{status}");
}

#[tokio::test]
async fn the_server_closing_ends_the_clients_stream() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (mut client_end, server_end) = open(&client, &mut accepted, StreamOptions::default()).await;
    server_end.send(Bytes::from_static(b"bye")).await.unwrap();
    drop(server_end); // dropping closes
    assert_eq!(&next(&mut client_end).await.unwrap().unwrap()[..], b"bye");
    assert!(next(&mut client_end).await.is_none());
    assert!(client_end.is_closed());
}

#[tokio::test]
async fn a_stalled_consumer_holds_the_sender_to_its_window() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let window = 64 * 1024;
    let options = StreamOptions::default().max_buf_size(window);
    let (client_end, mut server_end) = open(&client, &mut accepted, options).await;
    let message = Bytes::from(vec![7u8; 1024]);
    // The server reads nothing: the client may send a window's worth, then must wait.
    let mut sent = 0u64;
    loop {
        match client_end.try_send(message.clone()) {
            Ok(()) => sent += 1,
            Err(status) => {
                assert_eq!(status.code(), errno::EAGAIN, "{status}");
                break;
            }
        }
        assert!(sent <= 1000, "the window never closed");
    }
    assert_eq!(sent, window / 1024, "a window's worth, not a byte more");
    assert_eq!(client_end.unconsumed(), window);
    // A send now waits until the consumer reads.
    let writer = client_end.writer();
    let waiting = tokio::spawn(async move { writer.send(Bytes::from_static(b"more")).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    for _ in 0..sent {
        next(&mut server_end).await.unwrap().unwrap();
    }
    tokio::time::timeout(HANG_GUARD, waiting)
        .await
        .expect("the feedback reopened the window")
        .unwrap()
        .unwrap();
    assert_eq!(&next(&mut server_end).await.unwrap().unwrap()[..], b"more");
}

#[tokio::test]
async fn many_streams_share_one_connection() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let mut pairs = Vec::new();
    for _ in 0..32 {
        pairs.push(open(&client, &mut accepted, StreamOptions::default()).await);
    }
    let mut tasks = Vec::new();
    for (i, (mut client_end, mut server_end)) in pairs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..200u32 {
                let message = Bytes::from(format!("{i}:{n}"));
                client_end.send(message.clone()).await.unwrap();
                let got = next(&mut server_end).await.unwrap().unwrap();
                assert_eq!(got, message);
                server_end.send(got).await.unwrap();
                assert_eq!(next(&mut client_end).await.unwrap().unwrap(), message);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn a_stream_the_handler_does_not_accept_fails_the_call_as_brpcs() {
    let (server, _accepted) = host(None).await;
    let client = client_of(&server).await;
    let mut cntl = Controller::new();
    let mut stream = Stream::create(&mut cntl, StreamOptions::default());
    let call = client
        .echo_with(&mut cntl, EchoRequest::default())
        .await
        .unwrap_err();
    // brpc's client: EREQUEST, its words.
    assert_eq!(call.code(), errno::EREQUEST, "{call}");
    assert_eq!(call.message(), "The server didn't accept the stream");
    let status = stream.send(Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST, "{status}");
    assert!(status.message().contains("didn't accept"), "{status}");
    let failure = next(&mut stream).await.expect("the error").unwrap_err();
    assert_eq!(failure.code(), errno::EREQUEST);
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn a_reply_larger_than_the_streams_message_limit_still_arrives() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let tiny = StreamOptions::default().max_message_size(8);
    let (client_end, mut server_end) = open(&client, &mut accepted, tiny).await;
    client_end.send(Bytes::from_static(b"fits")).await.unwrap();
    assert_eq!(&next(&mut server_end).await.unwrap().unwrap()[..], b"fits");
}

#[tokio::test]
async fn a_stream_outlives_its_channel() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (mut client_end, mut server_end) =
        open(&client, &mut accepted, StreamOptions::default()).await;
    drop(client); // the last handle on the channel and its connection
    client_end.send(Bytes::from_static(b"still")).await.unwrap();
    assert_eq!(&next(&mut server_end).await.unwrap().unwrap()[..], b"still");
    server_end.send(Bytes::from_static(b"here")).await.unwrap();
    assert_eq!(&next(&mut client_end).await.unwrap().unwrap()[..], b"here");
}

#[tokio::test]
async fn a_cancelled_call_fails_its_stream() {
    // A peer that reads the request and never answers.
    let (address, _peer) = raw_peer(|socket| async move {
        tokio::time::sleep(HANG_GUARD).await;
        drop(socket);
    })
    .await;
    let channel = Channel::builder()
        .no_timeout()
        .connect(&address)
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let mut cntl = Controller::new();
    let stream = Stream::create(&mut cntl, StreamOptions::default());
    let call = client.echo_with(&mut cntl, EchoRequest::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(50), call)
            .await
            .is_err(),
        "no answer comes"
    );
    let status = stream.send(Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(status.code(), errno::ECANCELED, "{status}");
}

#[tokio::test]
async fn a_reply_that_does_not_decode_fails_the_stream_and_resets_the_servers() {
    use brisk::protocol::baidu_std::{self, StreamSettings};
    let (address, peer) = raw_peer(|mut socket| async move {
        let mut buf = BytesMut::new();
        let request = brisk_tests::raw::read_frame(&mut socket, &mut buf).await;
        let client_stream = request.meta.stream_settings.as_ref().unwrap().stream_id;
        let mut meta = baidu_std::response_meta(request.meta.correlation_id.unwrap(), 0, 0, None);
        meta.stream_settings = Some(StreamSettings {
            stream_id: 146,
            need_feedback: Some(true),
            writable: Some(true),
            extra_stream_ids: Vec::new(),
        });
        // An accepted stream, and a response that is not an EchoResponse.
        let reply = StreamFrame::Data {
            stream_id: client_stream,
            source_stream_id: 146,
            has_continuation: false,
            data: brisk_tests::raw::frame_bytes(&meta, b"\xff\xff", &[]).into(),
        };
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        socket.write_all(&out).await.unwrap();
        read_stream_frame(&mut socket, &mut buf).await
    })
    .await;
    let client = client_at(&address).await;
    let mut cntl = Controller::new();
    let stream = Stream::create(&mut cntl, StreamOptions::default());
    let call = client
        .echo_with(&mut cntl, EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(call.code(), errno::ERESPONSE, "{call}");
    let status = stream.send(Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(status.code(), errno::ERESPONSE, "{status}");
    // As brpc's HandleStreamConnection: RST to the stream the server accepted.
    assert_eq!(peer.await.unwrap(), StreamFrame::Rst { stream_id: 146 });
}

#[tokio::test]
async fn dropping_a_channel_closes_its_connection() {
    // A peer that answers one call (a plain baidu_std reply), then waits for the end.
    let (address, peer) = raw_peer(|mut socket| async move {
        let mut buf = BytesMut::new();
        let request = brisk_tests::raw::read_frame(&mut socket, &mut buf).await;
        let meta = brisk::protocol::baidu_std::response_meta(
            request.meta.correlation_id.unwrap(),
            0,
            0,
            None,
        );
        let reply = brisk_tests::raw::frame_bytes(&meta, &[], &[]);
        socket.write_all(&reply).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut rest))
            .await
            .expect("the client closes its connection")
            .unwrap();
    })
    .await;
    let client = client_at(&address).await;
    client.echo(EchoRequest::default()).await.unwrap();
    drop(client);
    peer.await.unwrap();
}

#[tokio::test]
async fn a_failed_call_fails_its_stream() {
    // No server listens here: the call fails, and so does the stream, with its error.
    let channel = Channel::builder()
        .timeout(HANG_GUARD)
        .max_retry(0)
        .connect("127.0.0.1:1")
        .await
        .expect("channel");
    let client = EchoServiceClient::new(channel);
    let mut cntl = Controller::new();
    let stream = Stream::create(&mut cntl, StreamOptions::default());
    let call = client
        .echo_with(&mut cntl, EchoRequest::default())
        .await
        .unwrap_err();
    let status = stream.send(Bytes::from_static(b"x")).await.unwrap_err();
    // As brpc's: the call's own code and text.
    assert_eq!(status.code(), call.code(), "{status}");
    assert_eq!(status.message(), call.message());
}

#[tokio::test]
async fn streams_need_baidu_std() {
    let (server, _accepted) = host(Some(StreamOptions::default())).await;
    for protocol in ["http", "h2:grpc", "hulu_pbrpc"] {
        let channel = Channel::builder()
            .timeout(HANG_GUARD)
            .protocol(protocol)
            .connect(&server.local_addr().to_string())
            .await
            .expect("channel");
        let client = EchoServiceClient::new(channel);
        let mut cntl = Controller::new();
        let stream = Stream::create(&mut cntl, StreamOptions::default());
        let status = client
            .echo_with(&mut cntl, EchoRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::EREQUEST, "{protocol}: {status}");
        assert!(stream.is_closed(), "{protocol}");
    }
}

#[tokio::test]
async fn a_stopping_server_ends_its_streams_with_an_error_that_says_so() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (mut client_end, mut server_end) =
        open(&client, &mut accepted, StreamOptions::default()).await;
    client_end
        .send(Bytes::from_static(b"before"))
        .await
        .unwrap();
    assert_eq!(
        &next(&mut server_end).await.unwrap().unwrap()[..],
        b"before"
    );
    tokio::time::timeout(HANG_GUARD, server.shutdown())
        .await
        .expect("the server stops");
    let status = next(&mut client_end).await.expect("an error").unwrap_err();
    assert!(
        matches!(status.code(), errno::EEOF | errno::EFAILEDSOCKET),
        "{status}"
    );
    assert!(
        status.message().contains("closed the connection"),
        "{status}"
    );
    let status = next(&mut server_end).await.expect("an error").unwrap_err();
    assert_eq!(status.code(), errno::EEOF, "{status}");
    assert!(
        status.message().contains("carrying the stream closed"),
        "{status}"
    );
    assert!(client_end.send(Bytes::from_static(b"after")).await.is_err());
}

/// Reads the next `STRM` frame from a raw socket.
async fn read_stream_frame(socket: &mut TcpStream, buf: &mut BytesMut) -> StreamFrame {
    loop {
        if let Some(decoded) = decode_frame(buf, 1 << 26).expect("a STRM frame") {
            match decoded {
                Decoded::Frame(frame) => return frame,
                Decoded::Malformed(bad) => panic!("{bad:?}"),
            }
        }
        let n = tokio::time::timeout(HANG_GUARD, socket.read_buf(buf))
            .await
            .expect("a frame within the hang guard")
            .expect("read");
        assert_ne!(n, 0, "connection closed before a whole frame arrived");
    }
}

#[tokio::test]
async fn bad_and_unknown_stream_frames_are_reset_and_leave_other_streams_alone() {
    let (server, mut accepted) = host(Some(StreamOptions::default())).await;
    let client = client_of(&server).await;
    let (client_end, mut server_end) = open(&client, &mut accepted, StreamOptions::default()).await;

    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buf = BytesMut::new();
    // A DATA frame whose meta does not decode (field 1 cut short), naming no sender: dropped.
    let mut bad = BytesMut::new();
    bad.extend_from_slice(b"STRM\0\0\0\x02\0\0\0\x02\x08\xff");
    socket.write_all(&bad).await.unwrap();
    // A frame for a stream the server does not have: RST to its sender.
    let unknown = StreamFrame::Data {
        stream_id: 999_999,
        source_stream_id: 5,
        has_continuation: false,
        data: Bytes::from_static(b"x"),
    };
    let mut out = BytesMut::new();
    unknown.encode(&mut out);
    socket.write_all(&out).await.unwrap();
    assert_eq!(
        read_stream_frame(&mut socket, &mut buf).await,
        StreamFrame::Rst { stream_id: 5 }
    );
    // The connection goes on, and so do the other streams.
    client_end
        .send(Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert_eq!(
        &next(&mut server_end).await.unwrap().unwrap()[..],
        b"still here"
    );
}

/// Brisk's frames against brpc 1.17's captures, apart from ids.
mod golden {
    use super::*;
    use brisk::protocol::baidu_std::{self, RpcMeta};

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(brisk_tests::wire_sample(&format!(
            "streaming_rpc/{name}.bin"
        )))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn stream_frame(bytes: &[u8]) -> StreamFrame {
        let mut buf = BytesMut::from(bytes);
        match decode_frame(&mut buf, 1 << 20).unwrap().unwrap() {
            Decoded::Frame(frame) => frame,
            Decoded::Malformed(bad) => panic!("{bad:?}"),
        }
    }

    fn encode(frame: &StreamFrame) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        buf.to_vec()
    }

    /// A baidu_std frame with its stream settings' id and its correlation id replaced.
    fn with_ids(prpc: &[u8], stream_id: Option<i64>, correlation_id: Option<i64>) -> Vec<u8> {
        let mut buf = BytesMut::from(prpc);
        let frame = baidu_std::decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        let mut meta: RpcMeta = frame.meta.clone();
        // Brisk's clients send the time a call has left; brpc's do not by default (a
        // deliberate difference the README lists).
        if let Some(request) = meta.request.as_mut() {
            request.timeout_ms = None;
        }
        if let (Some(id), Some(settings)) = (stream_id, meta.stream_settings.as_mut()) {
            settings.stream_id = id;
        }
        if let Some(id) = correlation_id {
            meta.correlation_id = Some(id);
        }
        brisk_tests::raw::frame_bytes(&meta, &frame.body, &[])
    }

    /// The server's answers to brpc's client frames (`c2s_*`) equal brpc's server's (`s2c_*`),
    /// its stream id put in place of brpc's 146.
    #[tokio::test]
    async fn the_servers_frames_are_brpcs() {
        let (server, mut accepted) = host(Some(StreamOptions::default())).await;
        let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut buf = BytesMut::new();
        socket
            .write_all(&sample("c2s_00_rpc_request"))
            .await
            .unwrap();
        let reply = read_stream_frame(&mut socket, &mut buf).await;
        let StreamFrame::Data {
            stream_id: 0,
            source_stream_id: brisk_id,
            has_continuation: false,
            data,
        } = reply.clone()
        else {
            panic!("not the reply brpc sends: {reply:?}")
        };
        let mut server_end = accepted.recv().await.unwrap();
        assert_eq!(server_end.id(), brisk_id);
        // brpc's bytes, with Brisk's stream id for its 146.
        let expected = StreamFrame::Data {
            stream_id: 0,
            source_stream_id: brisk_id,
            has_continuation: false,
            data: with_ids(
                stream_frame(&sample("s2c_00_strm_data_rpc_response")).data(),
                Some(brisk_id),
                None,
            )
            .into(),
        };
        assert_eq!(
            encode(&reply),
            encode(&expected),
            "the reply, inside a DATA frame"
        );
        assert_eq!(&data[..], expected.data());

        // brpc's data frames, addressed to Brisk's stream: each is answered with the FEEDBACK
        // brpc sent, once the handler's end has consumed it.
        for (i, (c2s, s2c, text)) in [
            (
                "c2s_01_strm_data",
                "s2c_01_strm_feedback",
                &b"abcdefghijklmnopqrstuvwxyz"[..],
            ),
            ("c2s_02_strm_data", "s2c_02_strm_feedback", b"0123456789"),
            (
                "c2s_03_strm_data",
                "s2c_03_strm_feedback",
                b"abcdefghijklmnopqrstuvwxyz",
            ),
            ("c2s_04_strm_data", "s2c_04_strm_feedback", b"0123456789"),
        ]
        .into_iter()
        .enumerate()
        {
            let StreamFrame::Data {
                source_stream_id,
                has_continuation,
                data,
                ..
            } = stream_frame(&sample(c2s))
            else {
                panic!("{c2s}")
            };
            let to_brisk = StreamFrame::Data {
                stream_id: brisk_id,
                source_stream_id,
                has_continuation,
                data,
            };
            socket.write_all(&encode(&to_brisk)).await.unwrap();
            assert_eq!(
                &next(&mut server_end).await.unwrap().unwrap()[..],
                text,
                "{i}"
            );
            let feedback = read_stream_frame(&mut socket, &mut buf).await;
            let StreamFrame::Feedback { consumed_size, .. } = stream_frame(&sample(s2c)) else {
                panic!("{s2c}")
            };
            assert_eq!(
                feedback,
                StreamFrame::Feedback {
                    stream_id: 0,
                    source_stream_id: brisk_id,
                    consumed_size
                },
                "{s2c}"
            );
        }
        // CLOSE is answered by CLOSE.
        socket
            .write_all(&encode(&StreamFrame::Close {
                stream_id: brisk_id,
                source_stream_id: 0,
            }))
            .await
            .unwrap();
        let close = read_stream_frame(&mut socket, &mut buf).await;
        assert_eq!(
            encode(&close),
            encode(&StreamFrame::Close {
                stream_id: 0,
                source_stream_id: brisk_id
            })
        );
        let StreamFrame::Close {
            stream_id: 0,
            source_stream_id: 146,
        } = stream_frame(&sample("s2c_05_strm_close"))
        else {
            panic!("s2c_05")
        };
        assert!(next(&mut server_end).await.is_none());
    }

    /// A frame for a stream the server does not have, sent first on a connection, gets the
    /// RST brpc answered with, byte for byte.
    #[tokio::test]
    async fn an_unknown_stream_gets_brpcs_rst() {
        let (server, _accepted) = host(Some(StreamOptions::default())).await;
        let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
        socket
            .write_all(&sample("err_req_unknown_stream"))
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let rst = read_stream_frame(&mut socket, &mut buf).await;
        assert_eq!(encode(&rst), sample("err_resp_unknown_stream"));
    }

    /// Brisk's client, talking to a socket that answers with brpc's server frames, sends
    /// brpc's client frames, apart from its ids (a stream that reads nothing, as brpc's
    /// example client's); and a connection that breaks fails its stream.
    #[tokio::test]
    async fn the_clients_frames_are_brpcs() {
        let (address, peer) = raw_peer(|mut socket| async move {
            let mut buf = BytesMut::new();
            let request = brisk_tests::raw::read_frame_bytes(&mut socket, &mut buf).await;
            let frame = baidu_std::decode_frame(&mut BytesMut::from(&request[..]), 1 << 20)
                .unwrap()
                .unwrap();
            let correlation_id = frame.meta.correlation_id.unwrap();
            let client_id = frame.meta.stream_settings.as_ref().unwrap().stream_id;
            // brpc's request, with Brisk's ids.
            assert_eq!(
                with_ids(&request, None, None),
                with_ids(
                    &sample("c2s_00_rpc_request"),
                    Some(client_id),
                    Some(correlation_id)
                ),
                "the request that opens the stream"
            );
            // brpc's reply (server stream 146), to Brisk's stream and call.
            let StreamFrame::Data { data, .. } =
                stream_frame(&sample("s2c_00_strm_data_rpc_response"))
            else {
                panic!()
            };
            let reply = StreamFrame::Data {
                stream_id: client_id,
                source_stream_id: 146,
                has_continuation: false,
                data: with_ids(&data, None, Some(correlation_id)).into(),
            };
            socket.write_all(&encode(&reply)).await.unwrap();
            // Two DATA frames and brpc's feedback for each.
            for (c2s, consumed_size) in [("c2s_01_strm_data", 26), ("c2s_02_strm_data", 36)] {
                let frame = read_stream_frame(&mut socket, &mut buf).await;
                let StreamFrame::Data {
                    stream_id: 146,
                    source_stream_id: 0,
                    has_continuation,
                    data,
                } = stream_frame(&sample(c2s))
                else {
                    panic!("{c2s}")
                };
                assert_eq!(
                    encode(&frame),
                    encode(&StreamFrame::Data {
                        stream_id: 146,
                        source_stream_id: client_id,
                        has_continuation,
                        data
                    }),
                    "{c2s}"
                );
                let feedback = StreamFrame::Feedback {
                    stream_id: client_id,
                    source_stream_id: 146,
                    consumed_size,
                };
                socket.write_all(&encode(&feedback)).await.unwrap();
            }
            // The client's CLOSE; then the connection breaks instead of an answer.
            let close = read_stream_frame(&mut socket, &mut buf).await;
            assert_eq!(
                close,
                StreamFrame::Close {
                    stream_id: 146,
                    source_stream_id: client_id
                }
            );
            assert_eq!(
                stream_frame(&sample("c2s_05_strm_close")),
                StreamFrame::Close {
                    stream_id: 146,
                    source_stream_id: 0
                }
            );
            client_id
        })
        .await;
        let client = client_at(&address).await;
        let mut cntl = Controller::new();
        let stream = Stream::create(&mut cntl, StreamOptions::default().accept_messages(false));
        let response = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "I'm a RPC to connect stream".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(response.message, "Accepted stream");
        stream
            .send(Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"))
            .await
            .unwrap();
        stream
            .send(Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        // The peer drops the connection after the CLOSE: the wait ends with it.
        tokio::time::timeout(HANG_GUARD, stream.close_and_wait())
            .await
            .expect("the wait ends");
        assert_eq!(peer.await.unwrap(), stream.id());
        assert_eq!(stream.unconsumed(), 0, "brpc's feedback counted");
    }
}
