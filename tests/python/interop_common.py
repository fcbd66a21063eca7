"""What the interop scripts share: loading the stubs of tests/proto/interop.proto.

The stubs are generated at run time (never committed) with grpc_tools.protoc, either into a
directory the caller gives (`--stubs DIR`, which the Rust tests fill once per test run) or
into a private temporary directory removed at exit.
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile

PROTO_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto"))
PROTO_FILE = os.path.join(PROTO_DIR, "interop.proto")

PIP_HINT = "pip install -q -r tests/python/requirements.txt"

# Big enough for the 4 MiB blob case with room to spare, on both directions.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def die(message):
    """Prints `message` to stderr and exits with status 2 (a set-up problem, not a failed case)."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(2)


def require_grpc():
    """Imports grpc and grpc_tools, or exits with the pip command that installs them."""
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc  # noqa: F401
    except ImportError as e:
        die(f"grpcio is not importable ({e}); run: {PIP_HINT}")


def generate_stubs(out_dir):
    """Writes interop_pb2.py and interop_pb2_grpc.py into `out_dir`."""
    from grpc_tools import protoc

    os.makedirs(out_dir, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO_FILE,
    ]
    if protoc.main(args) != 0:
        die(f"grpc_tools.protoc failed on {PROTO_FILE}")


def load_stubs(stubs_dir=None):
    """Returns the modules (interop_pb2, interop_pb2_grpc), generating them if needed."""
    require_grpc()
    if stubs_dir is None:
        stubs_dir = tempfile.mkdtemp(prefix="interop-stubs-")
        atexit.register(shutil.rmtree, stubs_dir, True)
    if not os.path.exists(os.path.join(stubs_dir, "interop_pb2_grpc.py")):
        generate_stubs(stubs_dir)
    sys.path.insert(0, stubs_dir)
    return importlib.import_module("interop_pb2"), importlib.import_module("interop_pb2_grpc")


def main_generate():
    """`python3 interop_common.py DIR`: only generates the stubs into DIR."""
    if len(sys.argv) != 2:
        die("usage: interop_common.py OUT_DIR")
    require_grpc()
    generate_stubs(sys.argv[1])


if __name__ == "__main__":
    main_generate()
