"""The results as one Markdown table (stdout and README) and as JSON (bench/results/latest.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .report_cold import SETTINGS_OFF, Add, cold_rows

RESULTS = Path(__file__).resolve().parent / "results"
NA = "n/a"
#: The floors (bench/floor.py), in the table's order.
FLOORS = ("floor", "floor-http.client", "floor-ours", "floor-two-processes")
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


def _lean_rows(lean: dict[str, Any] | None, add: Callable[..., None], server: str = "a Runtime API") -> None:
    """The no-op warm path against the lean Runtime API (bench/lean_api.py) or the Go one (bench/go_api.py): what
    each runtime itself costs, with events back to back and (lean) with a pause before each."""
    if lean is None:
        return
    if "error" in lean or "unsupported" in lean:
        reason = lean.get("error") or lean["unsupported"]
        add(f"no-op against {server} that answers at once", "failed" if "error" in lean else UNSUPPORTED,
            NA, NA, NA, reason[:60])
        return
    for block in lean.values():
        label = (f"no-op against {server} that answers at once" if not block["pause_us"] else
                 f"no-op against {server} that hands out each event {block['pause_us']} us after its next")
        ours, ric = block.get("lambda-supervisor"), block.get("awslambdaric")
        floors = [block.get(kind) for kind in FLOORS]
        for key, text in (("throughput_per_s", "invocations/s"), ("us_per_invocation", "us per invocation")):
            first, *others = (cell(floor, key, 0) for floor in floors)
            add(f"{label}: {text}", cell(ours, key, 0), cell(ric, key, 0), first, ratio(ours, ric, key), "", *others)
        _settings_off_rows(block, label, "us_per_invocation", "us per invocation", add)


def _settings_off_rows(block: dict[str, Any], label: str, key: str, text: str, add: Add) -> None:
    """One row per setting turned off (SETTINGS_OFF) that ``block`` measured, against awslambdaric's figure."""
    ric = block.get("awslambdaric")
    for kind, setting in SETTINGS_OFF:
        variant = block.get(kind)
        if variant is not None:
            add(f"{label}, `LAMBDA_SUPERVISOR_{setting}=off`: {text}", cell(variant, key, 0), cell(ric, key, 0), NA,
                ratio(variant, ric, key), "")


def table(results: dict[str, Any]) -> str:
    header = ("| measure | lambda-supervisor | awslambdaric | floor: requests | floor: http.client "
              "| floor: our client | floor: two processes | ours / awslambdaric | target |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]

    def add(measure: str, ours: str, ric: str, floor: str, ratio: str, target: str, *other_floors: str) -> None:
        floors = (floor, *other_floors, *[NA] * (len(FLOORS) - 1 - len(other_floors)))
        rows.append(f"| {measure} | {ours} | {ric} | {' | '.join(floors)} | {ratio} | {target} |")

    for name, label in (("noop", "no-op"), ("noop-one-write", "no-op, each answer in one write"),
                        ("big", "1 MiB in / 1 MiB out")):
        scenario = results.get(name)
        if scenario is None:
            continue
        if "error" in scenario:
            add(label, "failed", "failed", "failed", NA, scenario["error"][:60], "failed")
            continue
        ours, ric = scenario.get("lambda-supervisor"), scenario.get("awslambdaric")
        floors = [scenario.get(kind) for kind in FLOORS]
        for key, text, digits, target in (("throughput_per_s", "invocations/s", 0, ">= 1.0x"),  # issue 14, for both
                                          ("p50_ms", "p50 ms", 2, ""), ("p99_ms", "p99 ms", 2, "")):
            first, *others = (cell(floor, key, digits) for floor in floors)
            add(f"{label}: {text}", cell(ours, key, digits), cell(ric, key, digits), first, ratio(ours, ric, key),
                target, *others)
        _settings_off_rows(scenario, label, "throughput_per_s", "invocations/s", add)
    _lean_rows(results.get("lean"), add)
    _lean_rows(results.get("go"), add, "a Runtime API on Go's net/http")
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
