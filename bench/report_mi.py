"""The rows of bench/mi_throughput.py (Managed Instances' concurrency) as one Markdown table."""

from __future__ import annotations

from typing import Any

from .report import NA, cell, ratio

OURS, RIC = "lambda-supervisor", "awslambdaric"


def _scaling_rows(rows: list[str], block: dict[str, Any], label: str, target: str) -> None:
    n = block["n"]
    ours, ric = block.get(OURS), block.get(RIC)
    rows.append(f"| {label}, N=1: invocations/s | {cell(ours, 'n1_per_s')} | {cell(ric, 'n1_per_s')} "
                f"| {ratio(ours, ric, 'n1_per_s')} | |")
    rows.append(f"| {label}, N={n}: invocations/s | {cell(ours, 'n_per_s')} | {cell(ric, 'n_per_s')} "
                f"| {ratio(ours, ric, 'n_per_s')} | |")
    rows.append(f"| {label}: N={n} / N=1, each runtime's own | {cell(ours, 'ratio', 2, 'x')} "
                f"| {cell(ric, 'ratio', 2, 'x')} | | {target} |")
    rows.append(f"| {label}, N={n}: polls open at start | {cell(ours, 'slots_polling', 0)} "
                f"| {cell(ric, 'slots_polling', 0)} | | {n} |")


def _crash_rows(rows: list[str], block: dict[str, Any]) -> None:
    n, window = block["n"], block["window_s"]
    ours, ric = block.get(OURS), block.get(RIC)
    label = f"crash on every {block['crash_every']}th request, N={n}"
    rows.append(f"| {label}: served/s over {window:g} s | {cell(ours, 'served_per_s')} "
                f"| {cell(ric, 'served_per_s')} | {ratio(ours, ric, 'served_per_s')} | |")
    rows.append(f"| {label}: crashes in the window | {cell(ours, 'crashes', 0)} | {cell(ric, 'crashes', 0)} "
                f"| | |")
    rows.append(f"| {label}: slots still serving at the end (fewest over rounds) "
                f"| {cell(ours, 'slots_serving_at_end_min', 0)} | {cell(ric, 'slots_serving_at_end_min', 0)} "
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
