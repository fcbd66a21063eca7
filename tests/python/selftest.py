#!/usr/bin/env python3
"""Checks the interop scripts against each other: interop_client.py --case all against
interop_server.py (python <-> python), so a failure against Brisk is Brisk's, not theirs.

    python3 tests/python/selftest.py

Exits 0 when every case passes.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# Keep the source tree free of __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import interop_common  # noqa: E402


def main():
    interop_common.require_grpc()
    stubs = tempfile.mkdtemp(prefix="interop-selftest-")
    server = None
    try:
        interop_common.generate_stubs(stubs)
        server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "interop_server.py"), "--port", "0", "--stubs", stubs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = server.stdout.readline().strip()
        if not port.isdigit():
            interop_common.die(f"the server printed {port!r} instead of its port")
        client = subprocess.run(
            [
                sys.executable,
                os.path.join(HERE, "interop_client.py"),
                "--target",
                f"127.0.0.1:{port}",
                "--case",
                "all",
                "--stubs",
                stubs,
                "--server-kind",
                "grpcio",
            ],
            timeout=600,
        )
        sys.exit(client.returncode)
    finally:
        if server is not None:
            server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(stubs, ignore_errors=True)


if __name__ == "__main__":
    main()
