#!/usr/bin/env bash
# Brisk's examples against a real brpc's, both ways, over every protocol they share:
# brpc's echo_c++ client (baidu_std, hulu_pbrpc, sofa_pbrpc, public_pbrpc, nova_pbrpc) and
# nshead_extension_c++ client against Brisk's echo_server; Brisk's echo_client (baidu_std,
# hulu_pbrpc, sofa_pbrpc, nshead) against brpc's servers; brpc's streaming RPC both ways
# (streaming_echo_c++'s client and server against Brisk's stream_server and stream_client);
# and redis both ways (redis_c++'s redis_cli against Brisk's redis_server, Brisk's redis_cli
# against brpc's redis_server).
#
# Not part of CI: building brpc takes about half an hour on two cores. The golden tests check
# the same bytes against captures of brpc 1.17 on every run.
#
#   BRPC=/path/to/brpc bash tests/brpc_interop.sh
#
# BRPC is a brpc source tree built with CMake (`cmake -B build && make -C build brpc-static`);
# the two examples are built here if they are not yet. Needs brpc's build dependencies
# (libgflags-dev libprotobuf-dev libprotoc-dev protobuf-compiler libleveldb-dev libssl-dev;
# libreadline-dev for redis_cli).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BRPC:?set BRPC to a built brpc source tree}"

for example in echo_c++ nshead_extension_c++ streaming_echo_c++ redis_c++; do
    if [ ! -d "$BRPC/exbuild/$example" ]; then
        cmake -S "$BRPC/example/$example" -B "$BRPC/exbuild/$example" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_PREFIX_PATH="$BRPC/build/output" -DLINK_SO=OFF \
            -DGPERFTOOLS_LIBRARIES= -DGPERFTOOLS_INCLUDE_DIR=/usr/include >/dev/null
        make -C "$BRPC/exbuild/$example" -j2 >/dev/null
    fi
done
# redis_c++'s other programs are not needed (nor gperftools, which they would link).
make -C "$BRPC/exbuild/redis_c++" -j2 redis_cli redis_server >/dev/null
cargo build --release -q -p brisk-examples --bin echo_server --bin echo_client \
    --bin stream_server --bin stream_client --bin redis_server --bin redis_cli
ECHO="$BRPC/exbuild/echo_c++"
NSHEAD="$BRPC/exbuild/nshead_extension_c++"
STREAMING="$BRPC/exbuild/streaming_echo_c++"
REDIS="$BRPC/exbuild/redis_c++"
BRISK=target/release
BRISK_PORT=18700 BRPC_PORT=18701 BRPC_NSHEAD_PORT=18702
BRISK_STREAM_PORT=18703 BRPC_STREAM_PORT=18704
BRISK_REDIS_PORT=18705 BRPC_REDIS_PORT=18706
logs=$(mktemp -d)

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$logs"' EXIT
"$BRISK/echo_server" --listen 127.0.0.1:$BRISK_PORT >/dev/null 2>&1 & pids+=($!)
"$ECHO/echo_server" -port=$BRPC_PORT >/dev/null 2>&1 & pids+=($!)
"$NSHEAD/nshead_extension_server" -port=$BRPC_NSHEAD_PORT >/dev/null 2>&1 & pids+=($!)
"$BRISK/stream_server" --listen 127.0.0.1:$BRISK_STREAM_PORT >"$logs/brisk_stream" 2>&1 & pids+=($!)
"$STREAMING/streaming_echo_server" -port=$BRPC_STREAM_PORT >"$logs/brpc_stream" 2>&1 & pids+=($!)
"$BRISK/redis_server" --listen 127.0.0.1:$BRISK_REDIS_PORT >/dev/null 2>&1 & pids+=($!)
"$REDIS/redis_server" -port=$BRPC_REDIS_PORT >/dev/null 2>&1 & pids+=($!)
sleep 1

failures=0
check() { # NAME EXPECTED-REGEX COMMAND...
    local name=$1 expected=$2
    shift 2
    local out
    out=$(timeout 5 "$@" 2>&1 || true)
    if grep -qE -- "$expected" <<<"$out"; then
        echo "ok    $name"
    else
        echo "FAIL  $name"
        tail -3 <<<"$out" | sed 's/^/      /'
        failures=$((failures + 1))
    fi
}

for protocol in baidu_std hulu_pbrpc sofa_pbrpc public_pbrpc nova_pbrpc; do
    # brpc's client calls once a second: two calls within the timeout.
    check "brpc echo_client -protocol=$protocol -> Brisk echo_server" \
        "hello world" "$ECHO/echo_client" -server=127.0.0.1:$BRISK_PORT -protocol=$protocol
done
check "brpc echo_client -protocol=hulu_pbrpc -attachment=foo -> Brisk echo_server" \
    "hello world \(attached=foo\)" "$ECHO/echo_client" -server=127.0.0.1:$BRISK_PORT \
    -protocol=hulu_pbrpc -attachment=foo
check "brpc nshead_extension_client -> Brisk echo_server" \
    "requests at qps=[1-9]" "$NSHEAD/nshead_extension_client" -server=127.0.0.1:$BRISK_PORT
for protocol in baidu_std hulu_pbrpc sofa_pbrpc; do
    check "Brisk echo_client --protocol $protocol -> brpc echo_server" \
        'message="hello world"' "$BRISK/echo_client" --server 127.0.0.1:$BRPC_PORT --protocol $protocol
done
check "Brisk echo_client --protocol hulu_pbrpc --attachment foo -> brpc echo_server" \
    'attachment="foo"' "$BRISK/echo_client" --server 127.0.0.1:$BRPC_PORT \
    --protocol hulu_pbrpc --attachment foo
check "Brisk echo_client --protocol nshead -> brpc nshead_extension_server" \
    'message="hello world"' "$BRISK/echo_client" --server 127.0.0.1:$BRPC_NSHEAD_PORT --protocol nshead

# Streaming RPC: brpc's client writes its pair of messages once a second until SIGINT, then
# closes the stream; each side's server prints (logs) every message it receives.
check "brpc streaming_echo_client -> Brisk stream_server" \
    "0123456789" bash -c "timeout -s INT 2.5 '$STREAMING/streaming_echo_client' \
        -server=127.0.0.1:$BRISK_STREAM_PORT >/dev/null 2>&1; sleep 0.2; cat '$logs/brisk_stream'"
check "Brisk stream_client -> brpc streaming_echo_server" \
    "msg\[0\]=0123456789" bash -c "'$BRISK/stream_client' --server 127.0.0.1:$BRPC_STREAM_PORT \
        --count 2 --interval-ms 100 >/dev/null 2>&1; sleep 0.2; cat '$logs/brpc_stream'"
check "Brisk stream_client -> brpc echo_server (which accepts no stream)" \
    "The server didn't accept the stream" "$BRISK/stream_client" --server 127.0.0.1:$BRPC_PORT --count 1

# redis: brpc's redis_cli sends one command per run (its arguments joined by spaces) and prints
# the reply as brpc prints it; brpc's example server wants `AUTH db1 123456` first on each
# connection, and knows only AUTH, SET and GET.
check "brpc redis_cli set -> Brisk redis_server" \
    "^OK$" "$REDIS/redis_cli" -server=127.0.0.1:$BRISK_REDIS_PORT set greeting hello
check "brpc redis_cli get -> Brisk redis_server" \
    '^"hello"$' "$REDIS/redis_cli" -server=127.0.0.1:$BRISK_REDIS_PORT get greeting
check "brpc redis_cli incr -> Brisk redis_server" \
    "^\(integer\) 1$" "$REDIS/redis_cli" -server=127.0.0.1:$BRISK_REDIS_PORT incr counter
check "brpc redis_cli (unknown command) -> Brisk redis_server" \
    "unknown command \`hget\`" "$REDIS/redis_cli" -server=127.0.0.1:$BRISK_REDIS_PORT hget h f
check "Brisk redis_cli -> brpc redis_server" \
    '^\[OK, OK, "hello world", \(nil\), \(error\) ERR unknown command `incr`\]$' \
    "$BRISK/redis_cli" --server 127.0.0.1:$BRPC_REDIS_PORT --command "AUTH db1 123456" \
    --command "SET k 'hello world'" --command "GET k" --command "GET nosuchkey" --command "INCR n"

if [ $failures -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
