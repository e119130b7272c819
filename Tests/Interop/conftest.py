"""Starts the real `sluice` process for the interop tests.

The binary is $SLUICE_BIN, or the project's debug build (.build/debug/sluice, which
`make test` builds first). Every broker gets a free loopback port and a fresh log directory.
"""
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("SLUICE_BIN", os.path.join(ROOT, ".build", "debug", "sluice"))
READY = "Sluice is ready"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SluiceProcess:
    def __init__(self, log_dir, overrides=()):
        self.log_dir = log_dir
        self.port = free_port()
        self.overrides = list(overrides)
        self.proc = None
        self.output = []

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        args = [BINARY, "server", "--override", f"log.dirs={self.log_dir}",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        for o in self.overrides:
            args += ["--override", o]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError("sluice exited during start:\n" + "".join(self.output))
                continue
            self.output.append(line)
            if READY in line:
                # Keep draining output so the pipe never blocks the broker.
                import threading
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("sluice did not become ready:\n" + "".join(self.output))

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, timeout=30):
        """SIGTERM: graceful shutdown; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def sluice():
    with tempfile.TemporaryDirectory(prefix="sluice-it-", dir="/var/tmp") as d:
        s = SluiceProcess(d).start()
        try:
            yield s
        finally:
            s.kill()


@pytest.fixture
def make_sluice():
    """For tests that need their own overrides or several restarts."""
    made = []
    dirs = []

    def make(overrides=()):
        d = tempfile.mkdtemp(prefix="sluice-it-", dir="/var/tmp")
        dirs.append(d)
        s = SluiceProcess(d, overrides)
        made.append(s)
        return s

    yield make
    for s in made:
        s.kill()
    for d in dirs:
        subprocess.run(["rm", "-rf", d])


def wait_for(condition, timeout=20, interval=0.05, what="condition"):
    """Polls `condition` until it returns a truthy value or the deadline passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
