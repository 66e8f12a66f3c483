"""The benchmark runs end to end: ``python -m bench --quick --only noop noop-one-write`` gives positive numbers
for every runtime and floor measured. A smoke test of the harness, not a timed test: no threshold is asserted."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: lambda-supervisor again with one setting off, beside every warm-path measurement.
SETTINGS_OFF = ("lambda-supervisor/share-cpu-off", "lambda-supervisor/pipeline-off")


@pytest.mark.timeout(90)
@pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None,
    reason="awslambdaric, the benchmark's baseline, is not installed (pip install -e '.[dev]' or '.[bench]')",
)
def test_quick_noop_bench_reports_positive_numbers(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "noop", "noop-one-write",
                             "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(output.read_text())
    assert {"date", "cpu", "cores", "python"} <= data["machine"].keys()
    for scenario, label in (("noop", "no-op"), ("noop-one-write", "no-op, each answer in one write")):
        for runtime in ("lambda-supervisor", "awslambdaric", "floor", "floor-http.client", "floor-ours",
                        "floor-two-processes", *SETTINGS_OFF):
            measured = data[scenario][runtime]
            for key in ("throughput_per_s", "p50_ms", "p99_ms"):
                assert measured[key] > 0, (scenario, runtime, key, measured)
        assert f"| {label}: invocations/s |" in result.stdout
        for setting in ("SHARE_CPU", "PIPELINE_NEXT"):
            assert f"| {label}, `LAMBDA_SUPERVISOR_{setting}=off`: invocations/s |" in result.stdout


@pytest.mark.timeout(90)
@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed")
def test_quick_lean_bench_reports_each_runtimes_own_cost(tmp_path: Path) -> None:
    """Against the lean Runtime API (bench/lean_api.py): every runtime and floor served every event it was handed
    (a wrong post fails the run), and each has a positive rate and cost per invocation."""
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "lean", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    lean = json.loads(output.read_text())["lean"]
    assert (lean["back_to_back"]["pause_us"], lean["paused"]["pause_us"]) == (0, 300)
    for series in ("back_to_back", "paused"):
        for runtime in ("lambda-supervisor", "awslambdaric", "floor", "floor-http.client", "floor-ours",
                        "floor-two-processes", *SETTINGS_OFF):
            measured = lean[series][runtime]
            assert measured["throughput_per_s"] > 0 and measured["us_per_invocation"] > 0, (runtime, measured)
            assert measured["rounds"] == 1 and measured["invocations_per_round"] == 300
        # each event waits 300 us after its next: no runtime can take less than that per invocation
        assert min(lean["paused"][kind]["us_per_invocation"] for kind in lean["paused"] if kind != "pause_us") > 300
    assert "| no-op against a Runtime API that answers at once: us per invocation |" in result.stdout
    assert "| no-op against a Runtime API that hands out each event 300 us after its next: us per invocation |" \
        in result.stdout


@pytest.mark.timeout(120)
@pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed")
def test_quick_go_bench_reports_each_runtimes_own_cost_or_says_go_is_missing(tmp_path: Path) -> None:
    """Against the Runtime API on Go's net/http (bench/go_api.py): as the lean rows, or one row saying why not."""
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "go", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    go = json.loads(output.read_text())["go"]
    if shutil.which("go") is None:
        assert go == {"unsupported": "Go is not installed (apt-get install golang-go)"}
        assert "| no-op against a Runtime API on Go's net/http that answers at once | n/a (unsupported) |" \
            in result.stdout
        return
    for runtime in ("lambda-supervisor", "awslambdaric", *SETTINGS_OFF):
        measured = go["back_to_back"][runtime]
        assert measured["us_per_invocation"] > 0 and measured["invocations_per_round"] == 300, (runtime, measured)
    assert "| no-op against a Runtime API on Go's net/http that answers at once: us per invocation |" in result.stdout
