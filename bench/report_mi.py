"""The rows of bench/mi_throughput.py (Managed Instances' concurrency) as one Markdown table."""

from __future__ import annotations

from typing import Any

NA = "n/a"
OURS, RIC = "lambda-supervisor", "awslambdaric"


def _value(block: dict[str, Any] | None, key: str, digits: int = 1, suffix: str = "") -> str:
    if block is None:
        return NA
    if "unsupported" in block:
        return "n/a (unsupported)"
    value = block.get(key)
    return NA if value is None else f"{value:.{digits}f}{suffix}"


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, key: str) -> str:
    try:
        return f"{ours[key] / theirs[key]:.2f}x"  # type: ignore[index]
    except (KeyError, TypeError, ZeroDivisionError):
        return NA


def _scaling_rows(rows: list[str], block: dict[str, Any], label: str, target: str) -> None:
    n = block["n"]
    ours, ric = block.get(OURS), block.get(RIC)
    rows.append(f"| {label}, N=1: invocations/s | {_value(ours, 'n1_per_s')} | {_value(ric, 'n1_per_s')} "
                f"| {_ratio(ours, ric, 'n1_per_s')} | |")
    rows.append(f"| {label}, N={n}: invocations/s | {_value(ours, 'n_per_s')} | {_value(ric, 'n_per_s')} "
                f"| {_ratio(ours, ric, 'n_per_s')} | |")
    rows.append(f"| {label}: N={n} / N=1, each runtime's own | {_value(ours, 'ratio', 2, 'x')} "
                f"| {_value(ric, 'ratio', 2, 'x')} | | {target} |")
    rows.append(f"| {label}, N={n}: polls open at start | {_value(ours, 'slots_polling', 0)} "
                f"| {_value(ric, 'slots_polling', 0)} | | {n} |")


def _crash_rows(rows: list[str], block: dict[str, Any]) -> None:
    n, window = block["n"], block["window_s"]
    ours, ric = block.get(OURS), block.get(RIC)
    label = f"crash on every {block['crash_every']}th request, N={n}"
    rows.append(f"| {label}: served/s over {window:g} s | {_value(ours, 'served_per_s')} "
                f"| {_value(ric, 'served_per_s')} | {_ratio(ours, ric, 'served_per_s')} | |")
    rows.append(f"| {label}: crashes in the window | {_value(ours, 'crashes', 0)} | {_value(ric, 'crashes', 0)} "
                f"| | |")
    rows.append(f"| {label}: slots still serving at the end (fewest over rounds) "
                f"| {_value(ours, 'slots_serving_at_end_min', 0)} | {_value(ric, 'slots_serving_at_end_min', 0)} "
                f"| | {n} |")


def table(results: dict[str, Any]) -> str:
    rows = ["| measure | lambda-supervisor | awslambdaric | ours / awslambdaric | target |", "|---|---|---|---|---|"]
    for name, label, target in (("io", "I/O-bound", ">= 7x"), ("cpu", "CPU-bound", ">= 1.8x")):
        block = results.get(name)
        if block is None:
            continue
        if "error" in block:
            rows.append(f"| {label} | failed | failed | {NA} | {block['error'][:60]} |")
            continue
        event = block["event"]
        what = f"sleep {event['sleep_ms']} ms" if "sleep_ms" in event else f"{event['cpu_ms']} ms of CPU"
        _scaling_rows(rows, block, f"{label} ({what})", target)
    crash = results.get("crash")
    if crash is not None and "error" in crash:
        rows.append(f"| crash | failed | failed | {NA} | {crash['error'][:60]} |")
    elif crash is not None:
        _crash_rows(rows, crash)
    return "\n".join(rows)
