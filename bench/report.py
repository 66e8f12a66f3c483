"""The results as one Markdown table (stdout and README) and as JSON (bench/results/latest.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .report_cold import SHARE_CPU_OFF, cold_rows

RESULTS = Path(__file__).resolve().parent / "results"
NA = "n/a"
RUNTIMES = ("lambda-supervisor", "awslambdaric", "floor", "floor-http.client", "floor-ours", "floor-two-processes")
UNSUPPORTED = "n/a (unsupported)"


def cell(block: dict[str, Any] | None, key: str, digits: int = 1, suffix: str = "") -> str:
    """One runtime's figure for a table cell, or why there is none."""
    if block is None:
        return NA
    if "unsupported" in block:
        return UNSUPPORTED
    if "error" in block:
        return "failed"
    value = block.get(key)
    return NA if value is None else f"{value:.{digits}f}{suffix}"


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, key: str) -> str:
    try:
        return f"{ours[key] / theirs[key]:.2f}x"  # type: ignore[index]
    except (KeyError, TypeError, ZeroDivisionError):
        return NA


def table(results: dict[str, Any]) -> str:
    header = ("| measure | lambda-supervisor | awslambdaric | floor: requests | floor: http.client "
              "| floor: our client | floor: two processes | ours / awslambdaric | target |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]

    def add(measure: str, ours: str, ric: str, floor: str, ratio: str, target: str, floor2: str = NA,
            floor3: str = NA, floor4: str = NA) -> None:
        rows.append(f"| {measure} | {ours} | {ric} | {floor} | {floor2} | {floor3} | {floor4} | {ratio} | {target} |")

    for name, label in (("noop", "no-op"), ("big", "1 MiB in / 1 MiB out")):
        scenario = results.get(name)
        if scenario is None:
            continue
        if "error" in scenario:
            add(label, "failed", "failed", "failed", NA, scenario["error"][:60], "failed")
            continue
        ours, ric, floor, floor2, floor3, floor4 = (scenario.get(k) for k in RUNTIMES)
        add(f"{label}: invocations/s", cell(ours, "throughput_per_s", 0), cell(ric, "throughput_per_s", 0),
            cell(floor, "throughput_per_s", 0), ratio(ours, ric, "throughput_per_s"),
            ">= 1.0x", cell(floor2, "throughput_per_s", 0),  # issue 14, for both
            cell(floor3, "throughput_per_s", 0), cell(floor4, "throughput_per_s", 0))
        for key, text in (("p50_ms", "p50"), ("p99_ms", "p99")):
            add(f"{label}: {text} ms", cell(ours, key, 2), cell(ric, key, 2), cell(floor, key, 2),
                ratio(ours, ric, key), "", cell(floor2, key, 2), cell(floor3, key, 2), cell(floor4, key, 2))
        unshared = scenario.get(SHARE_CPU_OFF)
        if unshared is not None:
            add(f"{label}, `LAMBDA_SUPERVISOR_SHARE_CPU=off`: invocations/s", cell(unshared, "throughput_per_s", 0),
                cell(ric, "throughput_per_s", 0), NA, ratio(unshared, ric, "throughput_per_s"), "")
    crash = results.get("crash")
    if crash is not None and "error" not in crash:
        ric = crash.get("awslambdaric")
        for strategy in ("fresh", "spare", "fork"):
            ours = crash.get(f"lambda-supervisor/{strategy}")
            target = "<= 25" if strategy != "fresh" else ""
            add(f"crash, 500 ms init, `{strategy}`: crash submitted -> next served, ms",
                cell(ours, "crash_submit_to_next_served_ms"), cell(ric, "crash_submit_to_next_served_ms"), NA,
                ratio(ours, ric, "crash_submit_to_next_served_ms"), target)
            add(f"crash, 500 ms init, `{strategy}`: error posted -> next served, ms",
                cell(ours, "error_posted_to_next_served_ms"), "(no error post)", NA, NA, target)
    elif crash is not None:
        add("crash -> next served", "failed", "", "", NA, crash["error"][:60])
    hang = results.get("hang")
    if hang is not None:
        add("hang: deadline -> Runtime.Timeout posted, ms", cell(hang, "deadline_to_timeout_posted_ms"),
            "(Lambda's job)", NA, NA, "<= 50")
    memory = results.get("memory")
    if memory is not None and "error" not in memory:
        rss = memory["supervisor_rss"]
        add("supervisor RSS at rest, MB", f"{rss['at_rest_mb']:.1f}", NA, NA, NA, "")
        add(f"supervisor RSS after {rss['invocations']:,} invocations, MB", f"{rss['after_mb']:.1f}", NA, NA, NA,
            "flat")
        oom = memory["oom"]
        add(f"RSS limit ({oom['limit_mb']} MB) crossed -> Runtime.OutOfMemory posted, ms",
            f"{memory['rss_limit_to_oom_posted_ms']:.1f}", NA, NA, NA, "")
    elif memory is not None:
        add("memory", "failed", "", "", NA, memory["error"][:60])
    cold_rows(results, add)
    return "\n".join(rows)


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['date']}; {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}; "
            f"lambda-supervisor {machine['lambda_supervisor']}, awslambdaric {machine['awslambdaric']}")


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
