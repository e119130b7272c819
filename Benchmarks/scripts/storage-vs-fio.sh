#!/usr/bin/env bash
# Append throughput of the storage engine next to fio on the same disk, in one run.
# Usage: Benchmarks/scripts/storage-vs-fio.sh [DIR]   (DIR on the disk to measure; default /var/tmp)
# Needs fio (apt-get install fio) and a release build (make release).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-/var/tmp}/sluice-bench-$$"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
bin="$root/.build/release/sluice"
[ -x "$bin" ] || (cd "$root" && swift build -c release --product sluice >/dev/null)
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)"; exit 1; }

fio_run() {  # name, extra fio args
    fio --name="$1" --directory="$dir" --size=1G --bs=1M --rw=write --ioengine=io_uring --iodepth=16 \
        --numjobs=1 --end_fsync=1 --output-format=json "${@:2}" 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["write"]; print("%.1f" % (j["bw_bytes"]/1e6))'
    rm -f "$dir"/"$1"*
}
echo "machine: $(nproc) cores, $(uname -r), disk under $dir"
echo "fio buffered 1 MiB QD16: $(fio_run buffered --direct=0) MB/s"
echo "fio O_DIRECT 1 MiB QD16: $(fio_run direct --direct=1) MB/s"
echo "fio 4 KiB write + fdatasync each: $(fio --name=sync --directory="$dir" --size=64M --bs=4k --rw=write --ioengine=sync --fdatasync=1 --output-format=json 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["write"]; print("%.0f IOPS" % j["iops"])')"
rm -f "$dir"/sync*
# Sluice: one partition, batches of the given size (10 records each), in both I/O modes
# (sluice.io.mode buffered and direct), durability none and ack.
for spec in "1048576 400" "16384 20000" "1024 50000"; do
    set -- $spec
    size=$1; n=$2
    rb=$(( size / 10 - 30 ))
    for mode in buffered direct; do
        for d in none ack; do
            # One append at a time, then 16 waiting for their write/commit at once (as a producer
            # pipelines requests): direct mode's write-behind merges what is staged meanwhile.
            for inflight in 1 16; do
                rm -rf "$dir/log"; sync  # no writeback of the previous run competes with this one
                printf "sluice %7s-byte batches, %-8s durability %-4s in flight %2s: " "$size" "$mode" "$d" "$inflight"
                "$bin" storage stress --log-dir "$dir/log" --io-mode "$mode" --durability "$d" --record-bytes "$rb" --batches "$n" \
                    --segment-bytes 1073741824 --in-flight "$inflight" --summary
            done
        done
    done
done

# Group commit: 16 KiB batches to 8 partitions, each keeping 5 appends waiting for their commit
# (a producer's max.in.flight), so waiters share fdatasyncs; `ack` against `none`, with the
# fdatasyncs on io_uring and as plain syscalls. Prints commit latency and fsyncs per commit.
stress_json() {  # durability, backend
    rm -rf "$dir/log"; sync
    "$bin" storage stress --log-dir "$dir/log" --durability "$1" --commit-backend "$2" --record-bytes 1608 --batches 16000 \
        --partitions 8 --in-flight 5 --segment-bytes 1073741824 --summary
}
none=$(stress_json none io_uring)
for backend in io_uring syscalls; do
    ack=$(stress_json ack "$backend")
    python3 - "$none" "$ack" "$backend" <<'PY'
import json, sys
none, ack, backend = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"group commit 16 KiB x 8 partitions x 5 in flight, {backend}: none {none['MBps']} MB/s, ack {ack['MBps']} MB/s "
      f"({100 * ack['MBps'] / none['MBps']:.0f}% of none); commit p50 {ack['commit_p50_us']} us, p99 {ack['commit_p99_us']} us; "
      f"{ack['commits'] / max(1, ack['fsyncs']):.1f} commits per fdatasync")
PY
done
# Index lookups: random offsets of a 1 GiB log of 1 KiB batches (offset index + header scan).
rm -rf "$dir/log"
lookups=$("$bin" storage stress --log-dir "$dir/log" --durability none --record-bytes 72 --batches 1000000 \
    --segment-bytes 1073741824 --index-lookups 200000 --summary)
python3 - "$lookups" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"index lookup ({j['batches']} batches of {j['batch_bytes']} B): p50 {j['index_lookup_p50_ns']} ns, p99 {j['index_lookup_p99_ns']} ns")
PY
