#!/usr/bin/env bash
# Recovery time per GiB of unflushed tail: `sluice storage stress --durability none` writes
# about 1 GiB in 1 MiB batches and is SIGKILLed (no clean-shutdown marker, no checkpoint), then
# `sluice storage check` recovers the directory, re-validating every batch, and is timed, once
# with a cold page cache (when drop_caches is permitted) and once warm.
# Usage: Benchmarks/scripts/recovery-time.sh [DIR]   (needs a release build: make release)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.build/release/sluice"
[ -x "$bin" ] || (cd "$root" && swift build -c release --product sluice >/dev/null)
dir="${1:-/var/tmp}/sluice-recovery-$$"
trap 'rm -rf "$dir"' EXIT
python3 - "$bin" "$dir" <<'PY'
import os, signal, subprocess, sys, time
bin, d = sys.argv[1], sys.argv[2]
p = subprocess.Popen([bin, "storage", "stress", "--log-dir", d, "--durability", "none", "--record-bytes", "104800",
                      "--records-per-batch", "10", "--segment-bytes", "1073741824"], stdout=subprocess.PIPE, text=True)
for line in p.stdout:
    if int(line.split()[1]) >= 10239:  # 1024 batches of ~1 MiB
        break
p.send_signal(signal.SIGKILL)
p.wait()
size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs if f.endswith(".log"))
subprocess.run(["sync"])
cold = subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL).returncode == 0
for label in (["cold cache"] if cold else []) + ["warm cache"]:
    if label == "warm cache":
        # Recovery left a clean-shutdown marker; remove it so the second run validates again.
        os.remove(os.path.join(d, ".kafka_cleanshutdown"))
        os.remove(os.path.join(d, "recovery-point-offset-checkpoint"))
    t = time.time()
    subprocess.run([bin, "storage", "check", "--log-dir", d], check=True, capture_output=True)
    dt = time.time() - t
    print(f"{label}: recovered {size / 2**30:.2f} GiB in {dt:.2f} s = {dt / (size / 2**30):.2f} s/GiB")
PY
