#!/usr/bin/env python3
"""Where does the broker copy bytes in user space? A profile, not a claim.

    make zero-copy          # = Benchmarks/scripts/zero-copy.py (after the release build)
    ZERO_COPY_OVERRIDES="sluice.io.buffered.submit=ring" ZERO_COPY_OUT=/tmp/zc.md Benchmarks/scripts/zero-copy.py

Runs the release broker with copytrace (Benchmarks/scripts/copytrace.c, an LD_PRELOAD library
that counts every memcpy and memmove with its size and, for copies of 512 bytes or more, its
call stack), produces a known volume of records through kperf (librdkafka), consumes it back,
stops the broker, and reports the bytes copied per byte of record data, split by the path that
copied them (produce handling, fetch handling, frame assembly in the socket reader, other),
with the heaviest call stacks symbolized (addr2line, swift demangle). Writes docs/zero-copy.md.
(Valgrind's DHAT copy mode would do the same, but Debian's valgrind 3.19 cannot read Swift 6's
DWARF 5 and crashes on libdispatch's signal thread.)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

ROOT = C.ROOT
OUT = os.environ.get("ZERO_COPY_OUT", os.path.join(ROOT, "docs", "zero-copy.md"))
RECORDS = int(os.environ.get("ZERO_COPY_RECORDS", "1500"))
SIZE = int(os.environ.get("ZERO_COPY_SIZE", "16384"))
# More broker overrides for both runs, space-separated (e.g. "sluice.io.buffered.submit=ring").
OVERRIDES = os.environ.get("ZERO_COPY_OVERRIDES", "").split()

CATEGORIES = [
    ("produce path (decode, validate, append)", re.compile(r"handleProduce|PartitionLog6append|RecordBatch|validate")),
    ("fetch path (read, response)", re.compile(r"handleFetch|readSlices|FetchResponse|FileSlice|sendfile")),
    ("socket reads: frame assembly", re.compile(r"ByteToMessage|FrameDecoder|FrameReceive|cumulat")),
]


def demangle(names):
    if not shutil.which("swift-demangle") and not shutil.which("swift"):
        return names
    cmd = ["swift-demangle", "--simplified", "--compact"] if shutil.which("swift-demangle") else ["swift", "demangle", "--simplified", "--compact"]
    r = subprocess.run(cmd, input="\n".join(names), capture_output=True, text=True)
    out = r.stdout.splitlines()
    return out if len(out) == len(names) else names


def symbolize(stacks):
    """object+0xoffset strings -> demangled function names, one addr2line run per object."""
    wanted = {}
    for _, _, frames in stacks:
        for fr in frames:
            obj, _, off = fr.rpartition("+")
            wanted.setdefault(obj, set()).add(off)
    names = {}
    for obj, offs in wanted.items():
        offs = sorted(offs)
        if not os.path.exists(obj):
            continue
        r = subprocess.run(["addr2line", "-f", "-e", obj] + offs, capture_output=True, text=True)
        out = r.stdout.splitlines()
        for i, off in enumerate(offs):
            if 2 * i < len(out):
                names[f"{obj}+{off}"] = out[2 * i]
    keys = list(names)
    for k, v in zip(keys, demangle([names[k] for k in keys])):
        names[k] = v
    return names


def main():
    binary = os.path.join(ROOT, ".build", "release", "sluice")
    if not os.path.exists(binary):
        sys.exit("zero-copy: build the release binary first (make release)")
    C.ensure_kperf()
    libdir = C.librdkafka_dir()
    work = os.path.join("/var/tmp", f"sluice-zero-copy-{os.getpid()}")
    os.makedirs(work)
    lib = os.path.join(work, "copytrace.so")
    r = subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", lib, os.path.join(os.path.dirname(os.path.abspath(__file__)), "copytrace.c"), "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("zero-copy: building copytrace failed: " + r.stderr)
    def trace(mode):
        """One broker run under copytrace with sluice.socket.receive=mode."""
        report_path = os.path.join(work, f"copytrace-{mode}.txt")
        port = C.free_port()
        argv = [binary, "server", "--override", f"log.dirs={work}/data-{mode}", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--override", "sluice.log.level=warning", "--override", f"sluice.socket.receive={mode}"]
        for o in OVERRIDES:
            argv += ["--override", o]
        env = dict(os.environ, LD_PRELOAD=lib, COPYTRACE_OUT=report_path)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(os.path.join(work, f"broker-{mode}.log"), "w"), text=True, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                sys.exit(f"zero-copy: the broker exited; see {work}/broker-{mode}.log")
            if line.startswith("Sluice is ready"):
                break
        bootstrap = f"127.0.0.1:{port}"
        print(f"zero-copy: sluice.socket.receive={mode}: producing {RECORDS} x {SIZE} B, acks=1, then consuming them", flush=True)
        p = C.kperf("produce", bootstrap, ["-t", "zc", "-n", str(RECORDS), "-s", str(SIZE), "--acks", "1", "--partitions", "1",
                                           "--linger-ms", "5", "--batch-bytes", "1048576"], libdir, timeout=900)
        c = C.kperf("consume", bootstrap, ["-t", "zc", "-n", str(RECORDS)], libdir, timeout=900)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        totals_raw, stacks = {}, []
        with open(report_path) as f:
            for line in f:
                parts = line.split()
                if parts[0] == "site":
                    stacks.append((int(parts[1]), int(parts[2]), parts[3:]))
                else:
                    totals_raw[parts[0]] = int(parts[1])
        return p, c, totals_raw, stacks, report_path

    before_p, before_c, before_raw, _, _ = trace("cumulation")
    p, c, totals_raw, stacks, report_path = trace("frames")
    names = symbolize(stacks)
    produced = p.get("bytes", 0)
    consumed = c.get("bytes", 0)
    totals = {name: 0 for name, _ in CATEGORIES}
    totals["other"] = 0
    rows = []
    for copied, calls, frames in stacks:
        symbols = [names.get(fr, fr) for fr in frames]
        text = " ".join(symbols)
        category = next((name for name, rx in CATEGORIES if rx.search(text)), "other")
        totals[category] += copied
        rows.append((copied, calls, category, symbols))
    rows.sort(key=lambda s: -s[0])
    small = totals_raw["total_bytes"] - totals_raw["big_bytes"]
    lines = [
        "# Zero copy: bytes copied in user space, measured",
        "",
        "Generated by `make zero-copy` (`Benchmarks/scripts/zero-copy.py`): the release broker ran with",
        "copytrace (`Benchmarks/scripts/copytrace.c`, an LD_PRELOAD library counting every memcpy and",
        "memmove, with call stacks for copies of 512 bytes or more). kperf (librdkafka",
        f"{p.get('librdkafka', '?')}) produced {RECORDS:,} records of {SIZE:,} B (acks=1, one partition, 1 MiB",
        f"batches) and consumed them back. Commit `{C.machine()['commit']}`, {time.strftime('%Y-%m-%d', time.gmtime())}"
        + (f"; broker overrides: `{' '.join(OVERRIDES)}`." if OVERRIDES else "."),
        "",
        f"- record bytes produced: {produced:,}; consumed: {consumed:,}",
        f"- bytes the broker copied with memcpy/memmove, all sizes: {totals_raw['total_bytes']:,} in {totals_raw['total_calls']:,} calls"
        f" ({totals_raw['total_bytes'] / max(1, produced + consumed):.3f} per byte produced or consumed)",
        f"- of which copies under 512 bytes (headers, names, small structures): {small:,}",
        f"- the same run with `sluice.socket.receive=cumulation` (NIO's ByteToMessageHandler, the mode before"
        f" frames): {before_raw['total_bytes']:,} bytes in {before_raw['total_calls']:,} calls"
        f" ({before_raw['total_bytes'] / max(1, before_p.get('bytes', 0) + before_c.get('bytes', 0)):.3f} per byte produced or consumed)",
        "",
        "Copies of 512 bytes or more, by the path that made them:",
        "",
        "| path | bytes copied | per record byte produced |",
        "|---|---:|---:|",
    ]
    for name, bytes_ in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {bytes_:,} | {bytes_ / max(1, produced):.4f} |")
    lines += ["", "## Heaviest copy sites", "", "Bytes and calls per call stack (innermost frames first):", ""]
    for copied, calls, category, symbols in rows[:8]:
        shown = [s for s in symbols if s and s != "??"][:6]
        lines.append(f"- **{copied:,} bytes in {calls:,} calls** ({category})")
        for n in shown:
            lines.append(f"  - `{n[:150]}`")
    lines += ["", "## Reading it", "",
              "The produce path appends the request's own bytes: the offsets and leader epoch the log",
              "assigns are written from a 16-byte prefix with `pwritev`, so the batch is never modified",
              "(a modified NIO buffer would be copied on write). The fetch path hands file ranges to",
              "`sendfile`, so record bytes go from the page cache to the socket inside the kernel. A copy",
              "that grows with the record bytes shows up above as a ratio near 1 in its row.", "",
              "Frame assembly is gone from the produce path. A produce request is larger than one socket",
              "read, and NIO's ByteToMessageHandler copied its pieces into one contiguous buffer (about one",
              "copy of every produced byte: the cumulation line above). With `sluice.socket.receive=frames`",
              "(the default) the broker's FrameReceiver reads the length prefix and the first bytes of a",
              "large request, then hands the socket one buffer sized for the whole body, with those first",
              "bytes (at most 16 KiB) copied to its front; SO_RCVLOWAT holds the wake-up until the body is",
              "there, so the rest lands in place in one read. A short read falls back to copying the",
              "remainder, so correctness never depends on the kernel honouring the low-water mark.", ""]
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[8:]))
    print(f"zero-copy: wrote {OUT}; raw report in {report_path}")


if __name__ == "__main__":
    main()
