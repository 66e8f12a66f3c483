"""The rows of the cold-start, footprint, back-to-back crash and contention scenarios (bench/cold.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NA = "n/a"
Add = Callable[..., None]
OURS, FRESH, RIC = "lambda-supervisor", "lambda-supervisor/fresh", "awslambdaric"
#: lambda-supervisor again with its CPU hand-off off, measured alongside to show what the hand-off is worth.
SHARE_CPU_OFF = "lambda-supervisor/share-cpu-off"
#: lambda-supervisor again with ``next`` asked only once the post is answered, to show what pipelining is worth.
PIPELINE_OFF = "lambda-supervisor/pipeline-off"
#: Each of the above, and the setting that turns it off (LAMBDA_SUPERVISOR_<name>=off).
SETTINGS_OFF = ((SHARE_CPU_OFF, "SHARE_CPU"), (PIPELINE_OFF, "PIPELINE_NEXT"))


def _value(block: dict[str, Any] | None, key: str, digits: int = 1) -> str:
    if block is None or key not in block:
        return NA
    return f"{block[key]:.{digits}f}"


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, key: str) -> str:
    try:
        return f"{ours[key] / theirs[key]:.2f}x"  # type: ignore[index]
    except (KeyError, TypeError, ZeroDivisionError):
        return NA


def _failed(add: Add, label: str, scenario: dict[str, Any]) -> bool:
    if "error" in scenario:
        add(label, "failed", "failed", NA, NA, scenario["error"][:60])
        return True
    return False


def cold_rows(results: dict[str, Any], add: Add) -> None:
    cold = results.get("coldstart")
    if cold is not None and not _failed(add, "cold start", cold):
        for series, label, target in (("trivial", "trivial handler", "<= 1.15x"),
                                      ("init_500ms", "500 ms init", "<= 1.15x"),
                                      ("quarter_cpu", "trivial, {how}", "<= 1.3x"),
                                      ("quarter_cpu_100ms_period", "trivial, {how}", "")):
            if series not in cold:
                continue
            block = cold[series]
            label = label.format(how=block.get("how", "1/4 CPU"))
            for kind, name in ((OURS, "default strategy"), (FRESH, "`fresh`")):
                add(f"cold start, {label}, {name}: process start -> first response posted, median ms",
                    _value(block.get(kind), "median_ms"), _value(block.get(RIC), "median_ms"), NA,
                    _ratio(block.get(kind), block.get(RIC), "median_ms"), target if kind == OURS else "")
    footprint = results.get("footprint")
    if footprint is not None and not _failed(add, "footprint", footprint):
        ric = footprint.get(RIC)
        for kind in (OURS, FRESH, "lambda-supervisor/spare", "lambda-supervisor/fork"):
            name = "default strategy" if kind == OURS else f"`{kind.split('/')[1]}`"
            add(f"PSS of all processes at rest, {name}, MB", _value(footprint.get(kind), "pss_mb"),
                _value(ric, "pss_mb"), NA, _ratio(footprint.get(kind), ric, "pss_mb"),
                "<= 1.6x" if kind == FRESH else "")
        add("supervisor RSS at rest (its own process), MB", _value(footprint.get(OURS), "bootstrap_rss_mb"),
            _value(ric, "bootstrap_rss_mb"), NA, NA, "<= 12")
        fresh, bare = footprint.get(FRESH), footprint.get("bare_interpreter_rss_mb")
        if fresh is not None and bare is not None:
            add(f"worker RSS at rest over a bare interpreter ({bare:.1f} MB), `fresh`, trivial handler, MB",
                f"{fresh['worker_rss_mb'] - bare:.1f}", NA, NA, NA, "<= 3")
    _crash_and_contention_rows(results, add)


def _crash_and_contention_rows(results: dict[str, Any], add: Add) -> None:
    crashes = results.get("crashes")
    if crashes is not None and not _failed(add, "back-to-back crashes", crashes):
        for kind, name in ((OURS, "default strategy"), ("lambda-supervisor/spare", "`spare`"),
                           ("lambda-supervisor/fork", "`fork`")):
            block = crashes.get(kind)
            if block is None:
                continue
            add(f"{block['repeats']} crashes in a row, 500 ms init, {name}: error posted -> next served, median / max "
                f"ms ({block['within_target']} within 25 ms)", f"{block['median_ms']:.1f} / {block['max_ms']:.1f}",
                "(restart)", NA, NA, "each <= 25")
    contention = results.get("contention")
    if contention is not None and not _failed(add, "contention", contention):
        for placement, block in contention.items():
            ric = block.get(RIC)
            for kind, name in ((OURS, "hand-off on"), (SHARE_CPU_OFF, "hand-off off")):
                add(f"no-op with a busy loop on {placement}, {name}: invocations/s", _value(block.get(kind),
                    "throughput_per_s", 0), _value(ric, "throughput_per_s", 0), NA,
                    _ratio(block.get(kind), ric, "throughput_per_s"),
                    "on >= off" if kind == OURS and placement == "the home CPU" else "")
