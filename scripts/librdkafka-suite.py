#!/usr/bin/env python3
"""Runs librdkafka's own regression tests (its tests/ directory) against Sluice.

    LIBRDKAFKA_SRC=/path/to/librdkafka scripts/librdkafka-suite.py [TEST ...]

Every test that needs a broker runs alone against a fresh single node (its own log directory
and port, auto-create on, 4 partitions per topic, as librdkafka's own test clusters have). The
suite's config file is written by this script and passed with RDKAFKA_TEST_CONF, so the source
tree's tests/test.conf is left alone; tests that call Kafka's kafka-topics.sh or kafka-acls.sh get
stand-ins that run `sluice topics` and `sluice acls` (the Admin API). The broker runs with the
standard authorizer and allow.everyone.if.no.acl.found=true, so the ACL tests have one to talk to. Results go to a table in docs/compatibility.md,
between the librdkafka-suite markers, with the reason for every test that does not pass.

TEST is a test number (0011) or a name substring; none means every test that needs a broker.
The suite selects tests by number, so the tests that share a number run together.
The tree is built first if tests/test-runner is missing (./configure, make libs, make -C tests
build; Debian: libssl-dev zlib1g-dev liblz4-dev libzstd-dev, and rapidjson-dev, without which
the suite skips 0053, 0098 and 0110).

Environment: TEST_KAFKA_VERSION (4.0.0), RDK_REPEAT (runs per test, 1), RDK_TIMEOUT (seconds
per run, 900), SLUICE_BIN (.build/release/sluice; RDK_SLUICE_COMMIT names its commit in the
table), RDK_OUT (docs/compatibility.md; '-' writes no file), RDK_LOGS (.build/librdkafka-suite:
one log per run, the broker's beside it). SUBTESTS passes through to the suite (run a test's
subtests whose names contain it).
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.environ.get("LIBRDKAFKA_SRC")
KAFKA_VERSION = os.environ.get("TEST_KAFKA_VERSION", "4.0.0")
REPEAT = int(os.environ.get("RDK_REPEAT", "1"))
TIMEOUT = int(os.environ.get("RDK_TIMEOUT", "900"))
BINARY = os.path.abspath(os.environ.get("SLUICE_BIN", os.path.join(ROOT, ".build", "release", "sluice")))
OUT = os.environ.get("RDK_OUT", os.path.join(ROOT, "docs", "compatibility.md"))
LOGS = os.environ.get("RDK_LOGS", os.path.join(ROOT, ".build", "librdkafka-suite"))
BEGIN, END = "<!-- librdkafka-suite:begin -->", "<!-- librdkafka-suite:end -->"

# Why a test does not pass against one Sluice node, where the reason is known and is not a
# Sluice defect. A test listed here that passes is reported as passing.
REASONS = {
    "0097": "needs an SSL listener (issue #39)",
    "0126": "needs an OIDC token endpoint and SASL/OAUTHBEARER (issue #39)",
    "0128": "needs SASL (issue #39)",
    "0133": "needs an SSL listener (issue #39)",
    "0135": "needs SASL (issue #39)",
    "0142": "needs SASL re-authentication (issue #39)",
    "0101": "needs several brokers with rack ids (fetch from follower, issue #37)",
    "0107": "needs topic deletion and re-creation visible through several brokers' metadata",
    "0103": "creates topics with replication factor 3: needs three brokers (issue #37)",
}

# Share-group tests (KIP-932) need the share-group APIs, which Sluice does not serve.
SHARE_GROUPS = re.compile(r"^01[7-9]\d_share_consumer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_tree():
    runner = os.path.join(SRC, "tests", "test-runner")
    if os.path.exists(runner):
        return runner
    print("building librdkafka and its tests in", SRC, flush=True)
    for cmd in (["./configure", "--disable-gssapi"], ["make", f"-j{os.cpu_count()}", "libs"],
                ["make", "-C", "tests", f"-j{os.cpu_count()}", "build"]):
        subprocess.run(cmd, cwd=SRC, check=True, stdout=subprocess.DEVNULL)
    return runner


def tests_needing_a_broker():
    """(name, flags) of every test in tests/test.c's table that needs a broker and is not manual."""
    text = open(os.path.join(SRC, "tests", "test.c")).read()
    table = text[text.index("struct test tests[] = {"):]
    found = []
    for m in re.finditer(r"_TEST\((\d{4}_\w+),\s*([^,)]*)", table):
        name, flags = m.group(1), m.group(2)
        # Local tests need no broker; manual ones (8000_idle idles until stopped) the suite only
        # runs when asked by name.
        if "TEST_F_LOCAL" in flags or "TEST_F_MANUAL" in flags:
            continue
        found.append((name, flags.strip()))
    return found


def kafka_tools_stand_in(directory):
    """$KAFKA_PATH/bin/kafka-topics.sh and kafka-acls.sh for the tests that shell out to them."""
    bin_dir = os.path.join(directory, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for script, command in (("kafka-topics.sh", "topics"), ("kafka-acls.sh", "acls")):
        path = os.path.join(bin_dir, script)
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\n# Stand-in for Kafka\'s {script}: the same flags, through the Admin API.\n'
                    f'exec "{BINARY}" {command} "$@"\n')
        os.chmod(path, 0o755)
    return directory


class Broker:
    def __init__(self, log_path):
        self.dir = tempfile.mkdtemp(prefix="sluice-rdk-", dir="/var/tmp")
        self.port = free_port()
        self.log = open(log_path, "w")
        args = [BINARY, "server", "--override", f"log.dirs={self.dir}/logs",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", "num.partitions=4", "--override", "auto.create.topics.enable=true",
                # The ACL tests need an authorizer; with no ACL a resource stays open to all.
                "--override", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "--override", "allow.everyone.if.no.acl.found=true"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        for line in self.proc.stdout:
            self.log.write(line)
            if "Sluice is ready" in line:
                break
            if time.time() > deadline:
                raise RuntimeError("sluice did not start")
        else:
            raise RuntimeError("sluice exited during start; see " + log_path)
        import threading
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.log.write(line)

    def stop(self):
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return alive


def run_one(runner, number, names, attempt, stand_in):
    """Runs every test numbered `number` (the suite selects by number) on one fresh broker;
    returns a result per test name."""
    os.makedirs(LOGS, exist_ok=True)
    log_path = os.path.join(LOGS, f"{number}-{attempt}.log")
    broker = Broker(os.path.join(LOGS, f"{number}-{attempt}.broker.log"))
    conf = os.path.join(broker.dir, "test.conf")
    with open(conf, "w") as f:
        f.write(f"bootstrap.servers=127.0.0.1:{broker.port}\n")
    env = dict(os.environ, TESTS=number, TEST_KAFKA_VERSION=KAFKA_VERSION, RDKAFKA_TEST_CONF=conf,
               BROKERS=f"127.0.0.1:{broker.port}", KAFKA_PATH=stand_in,
               LD_LIBRARY_PATH=os.pathsep.join([os.path.join(SRC, "src"), os.path.join(SRC, "src-cpp")]))
    started = time.time()
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run([runner, "-L"], cwd=os.path.dirname(runner), env=env, stdout=log,
                                stderr=subprocess.STDOUT, timeout=TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = None
    seconds = time.time() - started
    broker_alive = broker.stop()
    output = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path, errors="replace").read())
    # The summary table: "| name | STATE | 1.234s | reason".
    summary = {m.group(1): (m.group(2), m.group(3).strip()) for m in
               re.finditer(r"^\|\s*(\d{4}_\w+)\s*\|\s*(\w+)\s*\|\s*[\d.]+s\s*\|(.*)$", output, re.M)}
    failure = re.search(r"### Test \"([^\"]*)\" failed at ([^\n]*)\n([^\n]*)", output)
    results = []
    for name in names:
        state, reason = summary.get(name, ("", ""))
        if rc is None:
            result, detail = "timeout", f"no answer within {TIMEOUT} s"
        elif state == "SKIPPED":
            result, detail = "skipped", reason
        elif state == "PASSED":
            result, detail = "passed", ""
        elif state == "FAILED" or rc != 0:
            result = "failed"
            detail = reason or (f"{failure.group(2).split(' at ')[0]}: {failure.group(3).strip()}" if failure else "see the log")
        else:
            result, detail = "skipped", "not run by the suite"
        if not broker_alive:
            detail = "BROKER EXITED; " + detail
        results.append({"test": name, "attempt": attempt, "result": result, "seconds": round(seconds, 1), "detail": detail[:200]})
    return results


FLAGS = {}


def why(name, runs):
    number = name[:4]
    if all(r["result"] == "passed" for r in runs):
        return ""
    if all(r["result"] == "skipped" for r in runs):
        why_skipped = runs[0]["detail"] or "its own conditions (flags or a broker version range)"
        return f"skipped by the suite: {why_skipped}" + (f"; {REASONS[number]}" if number in REASONS else "")
    if number in REASONS:
        return REASONS[number]
    if SHARE_GROUPS.match(name):
        return "share groups (KIP-932) are not served by Sluice"
    return "**open** — " + (next((r["detail"] for r in runs if r["detail"]), "see the log"))


def librdkafka_version():
    header = open(os.path.join(SRC, "src", "rdkafka.h")).read()
    m = re.search(r"#define RD_KAFKA_VERSION\s+0x([0-9a-fA-F]{8})", header)
    v = int(m.group(1), 16) if m else 0
    return f"{v >> 24}.{(v >> 16) & 0xff}.{(v >> 8) & 0xff}"


def write_report(results, selected_all):
    by_test = {}
    for r in results:
        by_test.setdefault(r["test"], []).append(r)
    # The commit the broker was built from (RDK_SLUICE_COMMIT when SLUICE_BIN is another build).
    commit = os.environ.get("RDK_SLUICE_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    counts = {}
    for runs in by_test.values():
        outcome = runs[0]["result"] if len({r["result"] for r in runs}) == 1 else "mixed"
        counts[outcome] = counts.get(outcome, 0) + 1
    lines = [BEGIN, "",
             f"librdkafka {librdkafka_version()} tests against Sluice {commit}, "
             f"`TEST_KAFKA_VERSION={KAFKA_VERSION}`, {datetime.date.today().isoformat()}, "
             f"{REPEAT} run(s) per test, each on a fresh node: "
             + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".", "",
             "| test | result | seconds | why it does not pass |", "|---|---|---:|---|"]
    for name in sorted(by_test):
        runs = by_test[name]
        results_text = "/".join(sorted({r["result"] for r in runs}))
        if len(runs) > 1:
            results_text += f" ({sum(r['result'] == 'passed' for r in runs)} of {len(runs)} passed)"
        seconds = "/".join(str(r["seconds"]) for r in runs) if len(runs) <= 3 else str(max(r["seconds"] for r in runs))
        lines.append(f"| {name} | {results_text} | {seconds} | {why(name, runs)} |")
    lines += ["", END]
    block = "\n".join(lines)
    if OUT == "-" or not selected_all:
        print(block)
        return
    text = open(OUT).read() if os.path.exists(OUT) else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote", OUT)


def main():
    if not SRC or not os.path.isdir(os.path.join(SRC, "tests")):
        sys.exit("set LIBRDKAFKA_SRC to a librdkafka source tree (with its tests/ directory)")
    if not os.path.exists(BINARY):
        sys.exit(f"no broker binary at {BINARY}: run `swift build -c release --product sluice` or set SLUICE_BIN")
    runner = build_tree()
    tests = tests_needing_a_broker()
    wanted = sys.argv[1:]
    if wanted:
        tests = [t for t in tests if any(w in t[0] for w in wanted)]
    stand_in = kafka_tools_stand_in(tempfile.mkdtemp(prefix="kafka-path-"))
    by_number = {}
    FLAGS.update(dict(tests))
    for name, _ in tests:
        by_number.setdefault(name[:4], []).append(name)
    results = []
    for number, names in sorted(by_number.items()):
        for attempt in range(1, REPEAT + 1):
            for r in run_one(runner, number, names, attempt, stand_in):
                results.append(r)
                print(json.dumps(r), flush=True)
    with open(os.path.join(LOGS, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_report(results, selected_all=not wanted)
    failed = [r for r in results if r["result"] in ("failed", "timeout") and r["test"][:4] not in REASONS
              and not SHARE_GROUPS.match(r["test"])]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
