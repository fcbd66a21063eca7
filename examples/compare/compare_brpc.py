#!/usr/bin/env python3
"""Brisk against brpc 1.17 over baidu_std, side by side: one connection, 64 calls in flight.

    BRPC=/path/to/brpc python3 examples/compare/compare_brpc.py [--size 4096] [--runs 3]

Not part of CI: it needs a built brpc (as tests/brpc_interop.sh: `cmake -B build && make -C
build brpc-static` in a brpc source tree, about half an hour on two cores, with
libgoogle-perftools-dev for its examples) and Brisk's release binaries (`cargo build --release
-p brisk-examples -p brisk-cli`). It builds brpc's `multi_threaded_echo_c++` example if it is not
yet built: its server echoes `example.EchoService/Echo`, the same service as Brisk's
`echo_server`, and its client keeps N calls in flight from N bthreads on one connection
(`-connection_type=single`).

Four pairs, each server pinned to CPU 0 and its client to CPU 1 (`taskset`), in an order that
rotates from run to run: brpc and Brisk each against itself, then each client against the other
server, so the two halves are measured apart. CPU per call is the process's user + system time
from /proc over the measured seconds, divided by the calls. Prints the medians as a Markdown
table.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = "multi_threaded_echo_c++"
WARMUP, DURATION = 2.0, 8.0


def example_dir(brpc):
    built = os.path.join(brpc, "exbuild", EXAMPLE)
    if not os.path.exists(os.path.join(built, "echo_server")):
        subprocess.run(["cmake", "-S", os.path.join(brpc, "example", EXAMPLE), "-B", built,
                        "-DCMAKE_BUILD_TYPE=Release",
                        "-DCMAKE_PREFIX_PATH=" + os.path.join(brpc, "build", "output"),
                        "-DLINK_SO=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["make", "-C", built, "-j2"], check=True, stdout=subprocess.DEVNULL)
    return built


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_accepting(port, server):
    deadline = time.time() + 10
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited: {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"no server on port {port} within 10 s")


def start_server(kind, port, brpc_dir):
    if kind == "brpc":
        # Run from its build directory: it loads the cert.pem and key.pem there.
        command, cwd = [os.path.join(brpc_dir, "echo_server"), f"-port={port}"], brpc_dir
    else:
        command = [os.path.join(ROOT, "target/release/echo_server"),
                   "--listen", f"127.0.0.1:{port}", "--threads", "1"]
        cwd = None
    return subprocess.Popen(["taskset", "-c", "0"] + command, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_client(kind, port, size, brpc_dir):
    if kind == "brpc":
        command = [os.path.join(brpc_dir, "echo_client"), f"-server=127.0.0.1:{port}",
                   "-thread_num=64", "-use_bthread=true", f"-request_size={size}",
                   "-connection_type=single", "-timeout_ms=3000"]
    else:
        command = [os.path.join(ROOT, "target/release/brisk"), "bench",
                   "--server", f"127.0.0.1:{port}", "--protocol", "baidu_std",
                   "--conns", "1", "--concurrency", "64", "--size", str(size),
                   "--duration", str(DURATION), "--warmup", str(WARMUP), "--threads", "1"]
    return subprocess.Popen(["taskset", "-c", "1"] + command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_pair(server_kind, client_kind, size, brpc_dir):
    """QPS, and CPU µs per call of the server and the client."""
    port = free_port()
    server = start_server(server_kind, port, brpc_dir)
    client = None
    try:
        wait_until_accepting(port, server)
        client = start_client(client_kind, port, size, brpc_dir)
        time.sleep(WARMUP)
        server_from, client_from, since = cpu_ticks(server.pid), cpu_ticks(client.pid), time.time()
        time.sleep(DURATION - 0.2)
        server_to, client_to = cpu_ticks(server.pid), cpu_ticks(client.pid)
        wall = time.time() - since
        if client_kind == "brpc":
            client.terminate()  # it runs until stopped, printing its QPS each second
        output = client.communicate(timeout=DURATION + 30)[0]
    finally:
        # Nothing may keep running on the pinned CPUs into the next measurement.
        for process in (client, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    if client_kind == "brpc":
        per_second = [int(q) for q in re.findall(r"qps=(\d+)", output)]
        measured = per_second[int(WARMUP):int(WARMUP + DURATION) - 1]
        qps = statistics.median(measured) if measured else 0.0
    else:
        found = re.search(r"qps=([\d.]+)", output)
        qps = float(found.group(1)) if found else 0.0
    if qps <= 0:
        raise RuntimeError(f"{client_kind} against {server_kind}: no QPS in `{output.strip()[-300:]}`")
    tick = os.sysconf("SC_CLK_TCK")
    per_call = lambda ticks: ticks / tick / wall / qps * 1e6
    return qps, per_call(server_to - server_from), per_call(client_to - client_from)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="message bytes")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    brpc = os.environ.get("BRPC") or sys.exit("set BRPC to a built brpc source tree")
    brpc_dir = example_dir(brpc)
    pairs = [("brpc", "brpc"), ("brisk", "brisk"), ("brpc", "brisk"), ("brisk", "brpc")]
    results = {pair: [] for pair in pairs}
    for run in range(options.runs):
        for pair in pairs[run % 4:] + pairs[:run % 4]:
            try:
                result = run_pair(*pair, options.size, brpc_dir)
            except RuntimeError as e:
                print(f"run {run + 1}: {e}", file=sys.stderr)
                continue
            results[pair].append(result)
            print(f"run {run + 1}: server {pair[0]}, client {pair[1]}: qps={result[0]:.0f} "
                  f"cpu_us_per_call server={result[1]:.2f} client={result[2]:.2f}",
                  file=sys.stderr, flush=True)
    print(f"\n{options.size} B messages, 1 connection × 64 in flight, median of {options.runs} "
          f"runs of {DURATION:.0f} s\n")
    print("| server | client | QPS | CPU µs per call, server + client |")
    print("|---|---|---:|---:|")
    for pair, got in results.items():
        if not got:
            print(f"| {pair[0]} | {pair[1]} | failed | |")
            continue
        median = [statistics.median(r[i] for r in got) for i in range(3)]
        print(f"| {pair[0]} | {pair[1]} | {median[0]:.0f} | {median[1]:.1f} + {median[2]:.1f} |")
    brisk, brpc_qps = results[("brisk", "brisk")], results[("brpc", "brpc")]
    if brisk and brpc_qps:
        ratio = statistics.median(r[0] for r in brisk) / statistics.median(r[0] for r in brpc_qps)
        print(f"\nBrisk ÷ brpc: {ratio:.2f}×")


if __name__ == "__main__":
    main()
