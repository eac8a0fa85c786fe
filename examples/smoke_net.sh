#!/usr/bin/env bash
# CTest smoke test for the TCP examples: starts a server on an ephemeral
# port, drives it with a client, and checks that both exit cleanly.
#   smoke_net.sh echo  BUILD_DIR   (echo_server + echo_client, 8 connections)
#   smoke_net.sh http  BUILD_DIR   (http_hello + two requests over bash's /dev/tcp)
set -euo pipefail
kind=$1 dir=$2
out=$(mktemp)
trap 'rm -f "$out"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT

start_server() {  # program, args...
  "$@" >"$out" &
  server=$!
  for _ in $(seq 1 500); do
    grep -q '^listening on ' "$out" && break
    kill -0 "$server" 2>/dev/null || { echo "server died"; exit 1; }
    sleep 0.01
  done
  address=$(sed -n 's/^listening on //p' "$out")
  [ -n "$address" ] || { echo "server did not report its address"; exit 1; }
}

case $kind in
  echo)
    start_server "$dir/example_echo_server" 127.0.0.1:0 8
    "$dir/example_echo_client" "$address" 8 0
    ;;
  http)
    start_server "$dir/example_http_hello" 127.0.0.1:0 1
    host=${address%:*} port=${address##*:}
    exec 3<>"/dev/tcp/$host/$port"
    printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
    reply=$(cat <&3)
    exec 3<&-
    [ "$(grep -c 'Hello, world!' <<<"$reply")" = 2 ] || { echo "unexpected reply: $reply"; exit 1; }
    ;;
esac
wait "$server"  # exits 0 after its last connection
server=
echo "smoke test '$kind' passed"
