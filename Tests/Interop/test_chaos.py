"""The ~3-minute variant of the fault-injection harness (`make chaos` runs the long one):
every workload and fault on a seeded schedule, then the checker over the whole history."""
import json
import os
import subprocess
import sys

from conftest import BINARY, ROOT


def test_chaos_short_run(tmp_path):
    seed = int(os.environ.get("SLUICE_CHAOS_SEED", "20261122"))
    out = tmp_path / "chaos"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "Tests", "Chaos", "chaos.py"), "--seed", str(seed),
                        "--duration", os.environ.get("SLUICE_CHAOS_SECONDS", "90"), "--interval", "7",
                        "--binary", BINARY, "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no summary; exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    summary = json.loads(lines[-1])
    print(json.dumps({k: v for k, v in summary.items() if k != "workloads"}))
    assert summary["faults_injected"] >= 5
    assert summary["acked"] > 1000
    assert summary["ok"], json.dumps(summary, indent=1)
    assert r.returncode == 0
