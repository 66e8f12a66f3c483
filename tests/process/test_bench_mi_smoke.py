"""The Managed Instances benchmark runs end to end: ``python -m bench --quick --only concurrency`` (which runs
bench/mi_throughput.py) gives positive numbers for both runtimes and prints its table. A smoke test of the harness,
not a timed test: no threshold is asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
@pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None,
    reason="awslambdaric, the benchmark's baseline, is not installed (pip install -e '.[dev]' or '.[bench]')",
)
def test_quick_concurrency_bench_reports_positive_numbers(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "concurrency", "--output",
                             str(output)], cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(output.read_text())["concurrency"]
    for scenario in ("io", "cpu"):
        for runtime in ("lambda-supervisor", "awslambdaric"):
            measured = data[scenario][runtime]
            for key in ("n1_per_s", "n_per_s", "ratio"):
                assert measured[key] > 0, (scenario, runtime, key, measured)
            assert 1 <= measured["slots_polling"] <= data[scenario]["n"], measured
    crash = data["crash"]
    for runtime in ("lambda-supervisor", "awslambdaric"):
        assert crash[runtime]["served_per_s"] > 0 and crash[runtime]["slots_polling"] >= 1, crash
    assert crash["lambda-supervisor"]["slots_serving_at_end_min"] >= 1, crash  # ours never loses a slot for good
    assert "| I/O-bound (sleep 50 ms): N=8 / N=1, each runtime's own |" in result.stdout
    assert "slots still serving at the end" in result.stdout
