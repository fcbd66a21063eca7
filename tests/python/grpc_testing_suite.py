#!/usr/bin/env python3
"""gRPC's interop suite with grpcio: the `grpc.testing.TestService` server and the client
cases of grpc/grpc's doc/interop-test-descriptions.md, written from that text, for Brisk's
tests (tests/tests/grpc_interop_suite.rs) against Brisk's interop_server and interop_client.

    python3 grpc_testing_suite.py server --port 0 [--stubs DIR] [--ignore-stdin]
    python3 grpc_testing_suite.py client --target HOST:PORT --case NAME|all [--stubs DIR]
                                         [--skip NAME ...]

The server prints its port alone on the first line of stdout, then serves until its stdin
closes (or until killed with `--ignore-stdin`). The client prints a line per case and exits
non-zero if one failed. The stubs come from examples/proto/grpc_testing.proto, generated at
run time with grpc_tools.protoc (never committed).
"""

import argparse
import atexit
import importlib
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent import futures

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402

PROTO_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "proto")
)
PROTO_FILE = os.path.join(PROTO_DIR, "grpc_testing.proto")

CASES = [
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
]

REQUEST_SIZE = 271828
RESPONSE_SIZE = 314159
STREAM_REQUEST_SIZES = [27182, 8, 1828, 45904]
STREAM_RESPONSE_SIZES = [31415, 9, 2653, 58979]
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


def load_stubs(stubs_dir):
    """Returns (grpc, grpc_testing_pb2, grpc_testing_pb2_grpc), generating the stubs if needed."""
    interop_common.require_grpc()
    import grpc
    from grpc_tools import protoc

    if stubs_dir is None:
        stubs_dir = tempfile.mkdtemp(prefix="grpc-testing-stubs-")
        atexit.register(shutil.rmtree, stubs_dir, True)
    if not os.path.exists(os.path.join(stubs_dir, "grpc_testing_pb2_grpc.py")):
        os.makedirs(stubs_dir, exist_ok=True)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={stubs_dir}",
            f"--grpc_python_out={stubs_dir}",
            PROTO_FILE,
        ]
        if protoc.main(args) != 0:
            interop_common.die(f"grpc_tools.protoc failed on {PROTO_FILE}")
    sys.path.insert(0, stubs_dir)
    return (
        grpc,
        importlib.import_module("grpc_testing_pb2"),
        importlib.import_module("grpc_testing_pb2_grpc"),
    )


# --- Server ---------------------------------------------------------------------------------


def make_servicer(grpc, pb2, pb2_grpc):
    def status_code(value):
        for code in grpc.StatusCode:
            if code.value[0] == value:
                return code
        return grpc.StatusCode.UNKNOWN

    def echo_metadata(context):
        initial = []
        for key, value in context.invocation_metadata():
            if key == ECHO_INITIAL:
                initial.append((key, value))
            elif key == ECHO_TRAILING:
                context.set_trailing_metadata([(key, value)])
        if initial:
            context.send_initial_metadata(initial)

    def zeros(size):
        return pb2.Payload(body=b"\0" * size)

    def abort_if_asked(context, request):
        if request.HasField("response_status") and request.response_status.code != 0:
            context.abort(status_code(request.response_status.code), request.response_status.message)

    def responses(parameters):
        for parameter in parameters:
            if parameter.interval_us > 0:
                time.sleep(parameter.interval_us / 1e6)
            yield pb2.StreamingOutputCallResponse(payload=zeros(parameter.size))

    class TestService(pb2_grpc.TestServiceServicer):
        def EmptyCall(self, request, context):
            echo_metadata(context)
            return pb2.Empty()

        def UnaryCall(self, request, context):
            echo_metadata(context)
            # grpcio does not tell a servicer whether a request came compressed: requests
            # that ask for the check (expect_compressed) are served unchecked.
            abort_if_asked(context, request)
            if request.response_compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            return pb2.SimpleResponse(payload=zeros(request.response_size))

        def StreamingOutputCall(self, request, context):
            echo_metadata(context)
            abort_if_asked(context, request)
            yield from responses(request.response_parameters)

        def StreamingInputCall(self, request_iterator, context):
            echo_metadata(context)
            size = sum(len(request.payload.body) for request in request_iterator)
            return pb2.StreamingInputCallResponse(aggregated_payload_size=size)

        def FullDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            for request in request_iterator:
                abort_if_asked(context, request)
                yield from responses(request.response_parameters)

        def HalfDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            requests = list(request_iterator)
            for request in requests:
                abort_if_asked(context, request)
            for request in requests:
                yield from responses(request.response_parameters)

    return TestService()


def serve(args):
    grpc, pb2, pb2_grpc = load_stubs(args.stubs)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=interop_common.GRPC_OPTIONS)
    pb2_grpc.add_TestServiceServicer_to_server(make_servicer(grpc, pb2, pb2_grpc), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(port, flush=True)
    if args.ignore_stdin:
        server.wait_for_termination()
    else:
        sys.stdin.read()
        server.stop(0)


# --- Client ---------------------------------------------------------------------------------


class CaseFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CaseFailed(message)


class Cases:
    def __init__(self, grpc, pb2, pb2_grpc, channel):
        self.grpc, self.pb2 = grpc, pb2
        self.stub = pb2_grpc.TestServiceStub(channel)
        self.unimplemented = pb2_grpc.UnimplementedServiceStub(channel)

    def zeros(self, size):
        return self.pb2.Payload(body=b"\0" * size)

    def expect_error(self, code, call, message=None):
        try:
            call()
        except self.grpc.RpcError as e:
            check(e.code() == code, f"status {e.code()} ({e.details()!r}); expected {code}")
            if message is not None:
                check(e.details() == message, f"message {e.details()!r}; expected {message!r}")
            return
        raise CaseFailed(f"succeeded; expected {code}")

    def large_unary_request(self, **fields):
        return self.pb2.SimpleRequest(
            response_size=RESPONSE_SIZE, payload=self.zeros(REQUEST_SIZE), **fields
        )

    def check_large_response(self, response):
        check(response.payload.body == b"\0" * RESPONSE_SIZE, f"payload of {len(response.payload.body)} bytes")

    def empty_unary(self):
        check(self.stub.EmptyCall(self.pb2.Empty()) == self.pb2.Empty(), "not an empty response")

    def large_unary(self):
        self.check_large_response(self.stub.UnaryCall(self.large_unary_request()))

    def client_compressed_unary(self):
        probe = self.large_unary_request(expect_compressed=self.pb2.BoolValue(value=True))
        self.expect_error(
            self.grpc.StatusCode.INVALID_ARGUMENT,
            lambda: self.stub.UnaryCall(probe, compression=self.grpc.Compression.NoCompression),
        )
        compressed = self.large_unary_request(expect_compressed=self.pb2.BoolValue(value=True))
        self.check_large_response(self.stub.UnaryCall(compressed, compression=self.grpc.Compression.Gzip))
        plain = self.large_unary_request(expect_compressed=self.pb2.BoolValue(value=False))
        self.check_large_response(self.stub.UnaryCall(plain, compression=self.grpc.Compression.NoCompression))

    def server_compressed_unary(self):
        # grpcio does not tell a client whether a response came compressed: the payloads are
        # checked.
        for compressed in (True, False):
            request = self.large_unary_request(response_compressed=self.pb2.BoolValue(value=compressed))
            self.check_large_response(self.stub.UnaryCall(request))

    def client_streaming(self):
        requests = (
            self.pb2.StreamingInputCallRequest(payload=self.zeros(size)) for size in STREAM_REQUEST_SIZES
        )
        response = self.stub.StreamingInputCall(requests)
        check(response.aggregated_payload_size == 74922, f"aggregated {response.aggregated_payload_size}")

    def server_streaming(self):
        request = self.pb2.StreamingOutputCallRequest(
            response_parameters=[self.pb2.ResponseParameters(size=size) for size in STREAM_RESPONSE_SIZES]
        )
        sizes = [len(response.payload.body) for response in self.stub.StreamingOutputCall(request)]
        check(sizes == STREAM_RESPONSE_SIZES, f"sizes {sizes}")

    def streaming_request(self, response_size, payload_size, **fields):
        return self.pb2.StreamingOutputCallRequest(
            response_parameters=[self.pb2.ResponseParameters(size=response_size)],
            payload=self.zeros(payload_size),
            **fields,
        )

    def feed(self):
        """A request iterator fed one request at a time (None ends it), and its feeder."""
        queue = []
        ready = threading.Condition()

        def put(item):
            with ready:
                queue.append(item)
                ready.notify()

        def requests():
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    item = queue.pop(0)
                if item is None:
                    return
                yield item

        return put, requests()

    def ping_pong(self):
        put, requests = self.feed()
        call = self.stub.FullDuplexCall(requests)
        for response_size, payload_size in zip(STREAM_RESPONSE_SIZES, STREAM_REQUEST_SIZES):
            put(self.streaming_request(response_size, payload_size))
            response = next(call)
            check(len(response.payload.body) == response_size, f"response of {len(response.payload.body)} bytes")
        put(None)
        check(next(call, None) is None, "a response too many")

    def empty_stream(self):
        check(list(self.stub.FullDuplexCall(iter([]))) == [], "a response to no request")

    def timeout_on_sleeping_server(self):
        put, requests = self.feed()
        put(self.pb2.StreamingOutputCallRequest(payload=self.zeros(27182)))
        try:
            self.expect_error(
                self.grpc.StatusCode.DEADLINE_EXCEEDED,
                lambda: list(self.stub.FullDuplexCall(requests, timeout=0.001)),
            )
        finally:
            put(None)

    def cancel_after_begin(self):
        put, requests = self.feed()
        future = self.stub.StreamingInputCall.future(requests)
        future.cancel()
        put(None)
        check(future.cancelled(), "the call was not cancelled")

    def cancel_after_first_response(self):
        put, requests = self.feed()
        call = self.stub.FullDuplexCall(requests)
        put(self.streaming_request(31415, 27182))
        next(call)
        call.cancel()
        put(None)
        self.expect_error(self.grpc.StatusCode.CANCELLED, lambda: next(call))

    def custom_metadata(self):
        metadata = ((ECHO_INITIAL, "test_initial_metadata_value"), (ECHO_TRAILING, b"\xab\xab\xab"))
        response, call = self.stub.UnaryCall.with_call(self.large_unary_request(), metadata=metadata)
        self.check_large_response(response)
        self.check_echoed(call)
        put, requests = self.feed()
        call = self.stub.FullDuplexCall(requests, metadata=metadata)
        put(self.streaming_request(RESPONSE_SIZE, REQUEST_SIZE))
        put(None)
        list(call)
        self.check_echoed(call)

    def check_echoed(self, call):
        initial = dict(call.initial_metadata())
        trailing = dict(call.trailing_metadata())
        check(initial.get(ECHO_INITIAL) == "test_initial_metadata_value", f"initial metadata {initial}")
        check(trailing.get(ECHO_TRAILING) == b"\xab\xab\xab", f"trailing metadata {trailing}")

    def status_case(self, message):
        status = self.pb2.EchoStatus(code=2, message=message)
        self.expect_error(
            self.grpc.StatusCode.UNKNOWN,
            lambda: self.stub.UnaryCall(self.pb2.SimpleRequest(response_status=status)),
            message,
        )
        request = self.pb2.StreamingOutputCallRequest(response_status=status)
        self.expect_error(
            self.grpc.StatusCode.UNKNOWN, lambda: list(self.stub.FullDuplexCall(iter([request]))), message
        )

    def status_code_and_message(self):
        self.status_case("test status message")

    def special_status_message(self):
        self.status_case(SPECIAL_MESSAGE)

    def unimplemented_method(self):
        self.expect_error(self.grpc.StatusCode.UNIMPLEMENTED, lambda: self.stub.UnimplementedCall(self.pb2.Empty()))

    def unimplemented_service(self):
        self.expect_error(
            self.grpc.StatusCode.UNIMPLEMENTED, lambda: self.unimplemented.UnimplementedCall(self.pb2.Empty())
        )


def run_client(args):
    grpc, pb2, pb2_grpc = load_stubs(args.stubs)
    channel = grpc.insecure_channel(args.target, options=interop_common.GRPC_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=10)
    cases = Cases(grpc, pb2, pb2_grpc, channel)
    names = CASES if args.case == "all" else [args.case]
    failed = 0
    for name in names:
        if name in (args.skip or []):
            print(f"{name}: skipped", flush=True)
            continue
        try:
            getattr(cases, name)()
            print(f"{name}: passed", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next case runs
            failed += 1
            print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server")
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--stubs", default=None)
    server.add_argument("--ignore-stdin", action="store_true")
    client = commands.add_parser("client")
    client.add_argument("--target", required=True)
    client.add_argument("--case", default="all", choices=CASES + ["all"])
    client.add_argument("--stubs", default=None)
    client.add_argument("--skip", action="append", choices=CASES)
    args = parser.parse_args()
    if args.command == "server":
        serve(args)
        return 0
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
