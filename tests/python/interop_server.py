#!/usr/bin/env python3
"""A grpcio server of tests/proto/interop.proto, for Brisk's gRPC interop tests.

    python3 interop_server.py --port 0 [--stubs DIR] [--ignore-stdin] [--reflection]

Prints the bound port alone on the first line of stdout, then serves until killed or until its
stdin closes (so a test that dies never leaves it behind; `--ignore-stdin` turns that off for
use from a shell). Behaviour, as the proto's comments define it:

- every method honours `fail_code` (aborts with gRPC status `fail_code`, details `text`) and
  `sleep_ms` (sleeps first), per message on the streaming request side; `rendezvous` (holds
  the call until that many calls with its `text` have arrived);
- Unary echoes, and with metadata `x-echo` appends `|<value>` to `text` and sends the value
  back as initial metadata `x-echoed`; metadata `x-gzip-response` (`x-deflate-response`) asks
  for a gzip (deflate) response;
- ServerStream replies `seq` messages "<text>-<i>" with seq i;
- ClientStream replies once: texts joined with ",", seq = count, blobs concatenated;
- Bidi echoes each request as it arrives.

Gzip-compressed requests are accepted transparently (grpcio does that by itself), and
`grpc.health.v1.Health/Check` answers SERVING, hand-encoded.
"""

import argparse
import os
import sys
import threading
import time
from concurrent import futures

# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common  # noqa: E402

# HealthCheckResponse { status: SERVING (1) }: field 1, varint 1.
HEALTH_SERVING = b"\x08\x01"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1, 0 for any free one")
    parser.add_argument("--stubs", default=None, help="directory of (or for) the generated stubs")
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit when stdin closes")
    parser.add_argument(
        "--reflection",
        action="store_true",
        help="serve gRPC server reflection (grpcio-reflection: v1alpha only)",
    )
    return parser.parse_args()


def status_code(grpc, value):
    """The grpc.StatusCode whose number is `value` (UNKNOWN for numbers gRPC does not define)."""
    for code in grpc.StatusCode:
        if code.value[0] == value and code != grpc.StatusCode.OK:
            return code
    return grpc.StatusCode.UNKNOWN


def make_servicer(grpc, pb2, pb2_grpc):
    """The Interop servicer class, built once grpc and the stubs are loaded."""

    arrived = {}
    more = threading.Condition()

    def rendezvous(group, count):
        """Holds the call until `count` calls of `group` have arrived."""
        with more:
            arrived[group] = arrived.get(group, 0) + 1
            more.notify_all()
            more.wait_for(lambda: arrived[group] >= count)

    def obey(request, context):
        """Applies a message's `rendezvous`, `sleep_ms` and `fail_code`."""
        if request.rendezvous > 0:
            rendezvous(request.text, request.rendezvous)
        if request.sleep_ms > 0:
            time.sleep(request.sleep_ms / 1000.0)
        if request.fail_code != 0:
            if request.blob:
                context.set_trailing_metadata([("grpc-status-details-bin", request.blob)])
            context.abort(status_code(grpc, request.fail_code), request.text)

    def metadata(context, key):
        for k, v in context.invocation_metadata():
            if k == key:
                return v
        return None

    class Interop(pb2_grpc.InteropServicer):
        def Unary(self, request, context):
            obey(request, context)
            if request.text == "inspect-metadata":
                md = list(context.invocation_metadata())
                dup = ",".join(v for k, v in md if k == "x-dup")
                auth = next((v for k, v in md if k == "authorization"), "")
                ua = any(k == "user-agent" for k, _ in md)
                blob = next((v for k, v in md if k == "trace-bin"), b"")
                return pb2.Msg(text=f"dup={dup}|auth={auth}|ua={'true' if ua else 'false'}", blob=blob)
            reply = pb2.Msg(text=request.text, seq=request.seq, blob=request.blob)
            echo = metadata(context, "x-echo")
            if echo is not None:
                reply.text = f"{request.text}|{echo}"
                context.send_initial_metadata([("x-echoed", echo)])
                context.set_trailing_metadata([("x-echoed-trailer", echo)])
            if metadata(context, "x-gzip-response") is not None:
                context.set_compression(grpc.Compression.Gzip)
            if metadata(context, "x-deflate-response") is not None:
                context.set_compression(grpc.Compression.Deflate)
            return reply

        def ServerStream(self, request, context):
            obey(request, context)
            for i in range(request.seq):
                yield pb2.Msg(text=f"{request.text}-{i}", seq=i)

        def ClientStream(self, request_iterator, context):
            texts, blobs = [], []
            for request in request_iterator:
                obey(request, context)
                texts.append(request.text)
                blobs.append(request.blob)
            return pb2.Msg(text=",".join(texts), seq=len(texts), blob=b"".join(blobs))

        def Bidi(self, request_iterator, context):
            for request in request_iterator:
                obey(request, context)
                yield pb2.Msg(text=request.text, seq=request.seq, blob=request.blob)

    return Interop


def health_handler(grpc):
    """grpc.health.v1.Health with Check only, on raw bytes (no health stubs needed)."""

    def check(request_bytes, context):
        return HEALTH_SERVING

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(check)},
    )


def wait_for_stdin_eof(stop):
    """Sets `stop` once stdin reaches end of file (the parent closed it or died)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def main():
    args = parse_args()
    pb2, pb2_grpc = interop_common.load_stubs(args.stubs)
    import grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=interop_common.GRPC_OPTIONS,
    )
    pb2_grpc.add_InteropServicer_to_server(make_servicer(grpc, pb2, pb2_grpc)(), server)
    server.add_generic_rpc_handlers((health_handler(grpc),))
    if args.reflection:
        from grpc_reflection.v1alpha import reflection

        service = pb2.DESCRIPTOR.services_by_name["Interop"].full_name
        reflection.enable_server_reflection((service, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        interop_common.die(f"cannot bind 127.0.0.1:{args.port}")
    server.start()
    print(port, flush=True)

    stop = threading.Event()
    if not args.ignore_stdin:
        threading.Thread(target=wait_for_stdin_eof, args=(stop,), daemon=True).start()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    server.stop(0).wait(5)


if __name__ == "__main__":
    main()
