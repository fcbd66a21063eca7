#!/usr/bin/env python3
"""A grpcio client running one interop case against a server of tests/proto/interop.proto.

    python3 interop_client.py --target 127.0.0.1:PORT --case NAME [--stubs DIR] [--server-kind K]

Prints "ok NAME" and exits 0 when the case passes; prints "FAIL NAME: why" to stderr and exits 1
when it fails (2 for a set-up problem). `--case all` runs every case. The server is either
Brisk (tests/tests/grpc_interop.rs) or interop_server.py (to check these scripts).
"""

import argparse
import os
import queue
import sys
import traceback

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402

# Generous: the machine running the tests may be busy.
RPC_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
# Brisk's EREQUEST, which brpc's ErrorCodeToGrpcStatus maps to INVALID_ARGUMENT.
EREQUEST = 1003
BIG_BLOB_BYTES = 4 * 1024 * 1024


class CaseFailed(Exception):
    """A check of a case did not hold."""


def check(condition, message):
    if not condition:
        raise CaseFailed(message)


def check_eq(actual, expected, what):
    if actual != expected:
        a, e = repr(actual), repr(expected)
        raise CaseFailed(f"{what}: got {a[:200]}, expected {e[:200]}")


def expect_rpc_error(grpc, call, code, what):
    """Runs `call`, which must fail with status `code`; returns the grpc.RpcError."""
    try:
        result = call()
    except grpc.RpcError as e:
        check_eq(e.code(), code, f"{what}: status code (details {e.details()!r})")
        return e
    raise CaseFailed(f"{what}: succeeded with {result!r}, expected {code}")


class Cases:
    """The cases, each a method taking no argument and raising on failure."""

    def __init__(self, grpc, pb2, pb2_grpc, channel, server_kind):
        self.grpc = grpc
        self.server_kind = server_kind
        self.pb2 = pb2
        self.channel = channel
        self.stub = pb2_grpc.InteropStub(channel)
        self.table = None

    def unary(self):
        request = self.pb2.Msg(text="hello", seq=7, blob=b"\x00\x01\xfe\xff")
        reply = self.stub.Unary(request, timeout=RPC_TIMEOUT_S)
        check_eq(reply, request, "echo")
        # An empty message (all defaults) round-trips too.
        check_eq(self.stub.Unary(self.pb2.Msg(), timeout=RPC_TIMEOUT_S), self.pb2.Msg(), "empty echo")

    def unary_metadata(self):
        request = self.pb2.Msg(text="meta", seq=1)
        reply, call = self.stub.Unary.with_call(
            request, metadata=[("x-echo", "v-42")], timeout=RPC_TIMEOUT_S
        )
        check_eq(reply.text, "meta|v-42", "text with x-echo appended")
        check_eq(reply.seq, 1, "seq")
        initial = dict(call.initial_metadata())
        check_eq(initial.get("x-echoed"), "v-42", f"x-echoed initial metadata (all: {initial})")
        trailing = dict(call.trailing_metadata())
        check_eq(trailing.get("x-echoed-trailer"), "v-42", f"trailing metadata (all: {trailing})")
        # Without x-echo, no x-echoed.
        reply, call = self.stub.Unary.with_call(request, timeout=RPC_TIMEOUT_S)
        check_eq(reply.text, "meta", "text without x-echo")
        check("x-echoed" not in dict(call.initial_metadata()), "x-echoed sent without x-echo")

    def metadata_in(self):
        """The handler sees every metadata value: repeated names, transport headers such as
        authorization and user-agent, and binary (-bin) values as bytes."""
        reply = self.stub.Unary(
            self.pb2.Msg(text="inspect-metadata"),
            metadata=[
                ("x-dup", "1"),
                ("x-dup", "2"),
                ("authorization", "Bearer t0k3n"),
                ("trace-bin", b"\x00\x01\xff\xfe"),
            ],
            timeout=RPC_TIMEOUT_S,
        )
        check_eq(reply.text, "dup=1,2|auth=Bearer t0k3n|ua=true", "what the handler saw")
        check_eq(reply.blob, b"\x00\x01\xff\xfe", "binary metadata as bytes")

    def server_stream(self):
        replies = list(self.stub.ServerStream(self.pb2.Msg(text="s", seq=5), timeout=RPC_TIMEOUT_S))
        check_eq([(r.text, r.seq) for r in replies], [(f"s-{i}", i) for i in range(5)], "stream")
        empty = list(self.stub.ServerStream(self.pb2.Msg(text="none", seq=0), timeout=RPC_TIMEOUT_S))
        check_eq(empty, [], "stream of seq 0")

    def client_stream(self):
        texts = ["a", "bb", "ccc"]
        blobs = [b"1", b"22", b"\x00\xff\x00"]
        requests = iter([self.pb2.Msg(text=t, blob=b) for t, b in zip(texts, blobs)])
        reply = self.stub.ClientStream(requests, timeout=RPC_TIMEOUT_S)
        check_eq(reply.text, "a,bb,ccc", "joined texts")
        check_eq(reply.seq, 3, "count")
        check_eq(reply.blob, b"".join(blobs), "concatenated blobs")
        reply = self.stub.ClientStream(iter([]), timeout=RPC_TIMEOUT_S)
        check_eq((reply.text, reply.seq, reply.blob), ("", 0, b""), "reply to no request")

    def bidi(self):
        # Ping-pong: each request is sent only after the previous echo arrived, which proves
        # the server answers as requests arrive rather than after the request stream ends.
        outgoing = queue.Queue()

        def requests():
            while True:
                message = outgoing.get()
                if message is None:
                    return
                yield message

        replies = self.stub.Bidi(requests(), timeout=RPC_TIMEOUT_S)
        for i in range(4):
            outgoing.put(self.pb2.Msg(text=f"ping-{i}", seq=i, blob=bytes([i]) * i))
            reply = next(replies)
            check_eq((reply.text, reply.seq, reply.blob), (f"ping-{i}", i, bytes([i]) * i), f"echo {i}")
        outgoing.put(None)
        rest = list(replies)
        check_eq(rest, [], "replies after the request stream ended")

    def concurrency(self):
        """Many calls in flight on one channel at once: each is held in the server until all
        have arrived, so they pass only if the server lets them all run together (a Brisk
        server sets no stream limit; interop_server.py has 32 worker threads)."""
        count = 500 if self.server_kind == "brisk" else 16
        calls = [
            self.stub.Unary.future(self.pb2.Msg(text="crowd", seq=i, rendezvous=count), timeout=RPC_TIMEOUT_S)
            for i in range(count)
        ]
        seqs = sorted(call.result().seq for call in calls)
        check_eq(seqs, list(range(count)), "every call answered")

    def deadline(self):
        grpc = self.grpc
        expect_rpc_error(
            grpc,
            lambda: self.stub.Unary(self.pb2.Msg(text="slow", sleep_ms=5000), timeout=0.5),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "a call slower than its deadline",
        )
        # The server is still fine afterwards.
        check_eq(self.stub.Unary(self.pb2.Msg(text="after"), timeout=RPC_TIMEOUT_S).text, "after", "echo")

    def error(self):
        grpc = self.grpc
        text = "bad request: caf\u00e9 100% {x}"
        # A Brisk server fails with Brisk code fail_code, a grpcio one with gRPC status fail_code.
        code = EREQUEST if self.server_kind == "brisk" else grpc.StatusCode.INVALID_ARGUMENT.value[0]
        e = expect_rpc_error(
            grpc,
            lambda: self.stub.Unary(self.pb2.Msg(text=text, fail_code=code), timeout=RPC_TIMEOUT_S),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"fail_code {code}",
        )
        # Exactly the handler's text: no address or code pasted in.
        check_eq(e.details(), text, "details")

    def status_details(self):
        """A failed call's binary details (`grpc-status-details-bin`, an encoded
        google.rpc.Status) reach the client as the server set them."""
        grpc = self.grpc
        code = EREQUEST if self.server_kind == "brisk" else grpc.StatusCode.INVALID_ARGUMENT.value[0]
        # google.rpc.Status { code: 3, message: "bad", details: [] }, hand-encoded.
        details = b"\x08\x03\x12\x03bad"
        e = expect_rpc_error(
            grpc,
            lambda: self.stub.Unary(
                self.pb2.Msg(text="with details", fail_code=code, blob=details), timeout=RPC_TIMEOUT_S
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "a failure with details",
        )
        trailing = dict(e.trailing_metadata())
        check_eq(trailing.get("grpc-status-details-bin"), details, f"details (trailers: {trailing})")
        check_eq(e.details(), "with details", "message")

    def error_table(self):
        """Walks Brisk's error table (--table code=STATUS,...): a Brisk handler failing with
        each code reaches grpcio as that canonical status, with the handler's text alone as the
        message and the exact code in the `brisk-error-code` trailer."""
        grpc = self.grpc
        check(self.table, "--table is required for the error_table case")
        for entry in self.table.split(","):
            code, status = entry.split("=")
            text = f"failed with {code}"
            e = expect_rpc_error(
                grpc,
                lambda: self.stub.Unary(self.pb2.Msg(text=text, fail_code=int(code)), timeout=RPC_TIMEOUT_S),
                getattr(grpc.StatusCode, status),
                f"Brisk code {code}",
            )
            check_eq(e.details(), text, f"details for Brisk code {code}")
            trailers = dict(e.trailing_metadata() or ())
            check_eq(trailers.get("brisk-error-code"), code, f"brisk-error-code for {code}")

    def compressed(self, compression, name):
        text = "compress me " * 5000
        request = self.pb2.Msg(text=text, seq=3, blob=b"\x00" * 100000)
        reply = self.stub.Unary(request, timeout=RPC_TIMEOUT_S, compression=compression)
        check_eq(reply, request, f"{name}-compressed echo")
        # Also a compressed request stream.
        requests = iter([self.pb2.Msg(text="z" * 1000) for _ in range(3)])
        reply = self.stub.ClientStream(requests, timeout=RPC_TIMEOUT_S, compression=compression)
        check_eq((reply.text, reply.seq), (",".join(["z" * 1000] * 3), 3), f"{name} client stream")

    def gzip(self):
        self.compressed(self.grpc.Compression.Gzip, "gzip")

    def deflate(self):
        self.compressed(self.grpc.Compression.Deflate, "deflate")

    def big(self):
        blob = os.urandom(BIG_BLOB_BYTES)
        reply = self.stub.Unary(self.pb2.Msg(text="big", blob=blob), timeout=RPC_TIMEOUT_S)
        check_eq(len(reply.blob), len(blob), "blob length")
        check(reply.blob == blob, "blob bytes differ")
        check_eq(reply.text, "big", "text")

    def unimplemented(self):
        grpc = self.grpc
        for path in ("/interop.Interop/NoSuchMethod", "/no.such.Service/Unary"):
            call = self.channel.unary_unary(path)
            expect_rpc_error(
                grpc,
                lambda: call(b"", timeout=RPC_TIMEOUT_S),
                grpc.StatusCode.UNIMPLEMENTED,
                path,
            )

    def health(self):
        # HealthCheckRequest { service: "" } encodes to no bytes; HealthCheckResponse
        # { status: SERVING } to field 1 varint 1.
        check_ = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        reply = check_(b"", timeout=RPC_TIMEOUT_S)
        check_eq(parse_health_status(reply), 1, f"health status (reply bytes {reply!r})")


CASES = [
    "unary",
    "unary_metadata",
    "metadata_in",
    "server_stream",
    "client_stream",
    "bidi",
    "concurrency",
    "deadline",
    "error",
    "status_details",
    "gzip",
    "deflate",
    "big",
    "unimplemented",
    "health",
]


def parse_health_status(data):
    """Field 1 (status) of an encoded HealthCheckResponse; 0 (UNKNOWN) when absent."""
    status, i = 0, 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = read_varint(data, i)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, i = read_varint(data, i)
            i += length
        else:
            raise CaseFailed(f"unexpected wire type {wire_type} in health reply {data!r}")
    return status


def read_varint(data, i):
    value, shift = 0, 0
    while True:
        if i >= len(data):
            raise CaseFailed(f"truncated varint in {data!r}")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--case", required=True, choices=CASES + ["all", "error_table"])
    parser.add_argument("--stubs", default=None, help="directory of (or for) the generated stubs")
    parser.add_argument(
        "--server-kind",
        choices=["brisk", "grpcio"],
        default="brisk",
        help="what serves: fail_code means a Brisk errno or a gRPC status (case error)",
    )
    parser.add_argument(
        "--table", default=None, help="code=STATUS pairs, comma-separated (case error_table)"
    )
    parser.add_argument("--ca", default=None, help="PEM file of the CA: connect over TLS")
    parser.add_argument(
        "--server-name", default=None, help="the name to verify the server's certificate for"
    )
    return parser.parse_args()


def run_case(cases, name):
    try:
        getattr(cases, name)()
    except CaseFailed as e:
        print(f"FAIL {name}: {e}", file=sys.stderr, flush=True)
        return False
    except Exception as e:  # an unexpected RpcError or anything else: show all of it
        print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        traceback.print_exc()
        return False
    print(f"ok {name}", flush=True)
    return True


def main():
    args = parse_args()
    pb2, pb2_grpc = interop_common.load_stubs(args.stubs)
    import grpc

    if args.ca:
        with open(args.ca, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        options = list(interop_common.GRPC_OPTIONS)
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        channel = grpc.secure_channel(args.target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=interop_common.GRPC_OPTIONS)
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        print(f"FAIL {args.case}: cannot connect to {args.target}", file=sys.stderr, flush=True)
        sys.exit(1)
    cases = Cases(grpc, pb2, pb2_grpc, channel, args.server_kind)
    cases.table = args.table
    names = CASES if args.case == "all" else [args.case]
    results = [run_case(cases, name) for name in names]
    channel.close()
    if len(names) > 1:
        print(f"{results.count(True)} passed, {results.count(False)} failed", flush=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
