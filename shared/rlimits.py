"""Resource limits for the worker: ``LAMBDA_SUPERVISOR_RLIMITS=NOFILE=256,NPROC=64,CORE=0,CPU=30``.

The supervisor parses the setting (a typo stops the runtime with an error naming the variable) and passes the
normalised text to the worker, which applies it to itself at startup, before it imports any user code; the
handler's child processes inherit the limits.

Each item is ``NAME=N`` (soft and hard limit both N) or ``NAME=SOFT:HARD``; a value is a non-negative integer or
``unlimited``. ``CPU=N`` is different: it gives every *invocation* N seconds of the worker's CPU time. The kernel
counts CPU time over a process's whole life, so before each invocation the worker moves its soft limit to what
it has used so far plus N; a handler that burns through that is ended by ``SIGXCPU`` and reported as
``Runtime.ExitError`` (the hard limit is left alone, so the worker can always re-arm the next invocation).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .named_tuple import NamedTuple

#: The limits that may be set, by the name used in the setting (``resource.RLIMIT_<name>``). ``resource`` is
#: imported only where a limit is set: most functions set none, and every worker's start would pay for it.
NAMES = ("AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC", "STACK")
UNLIMITED = "unlimited"
MAX_VALUE = 2**63 - 1  # rlim_t; the kernel's RLIM_INFINITY is all ones


class RLimit(NamedTuple):
    name: str
    soft: int  # resource.RLIM_INFINITY for unlimited
    hard: int


def _number(name: str) -> int:
    """The ``resource.RLIMIT_*`` number of the limit ``name``."""
    import resource

    return int(getattr(resource, f"RLIMIT_{name}"))


def _value(text: str, item: str) -> int:
    import resource

    text = text.strip()
    if text == UNLIMITED:
        return resource.RLIM_INFINITY
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"{item!r}: {text!r} is not a non-negative integer or {UNLIMITED!r}")
    value = int(text)
    if value >= MAX_VALUE:
        raise ValueError(f"{item!r}: {text} is too large (use {UNLIMITED!r})")
    return value


def _show(value: int) -> str:
    import resource

    return UNLIMITED if value == resource.RLIM_INFINITY else str(value)


def _above(value: int, limit: int) -> bool:
    import resource

    if value == resource.RLIM_INFINITY:
        return limit != resource.RLIM_INFINITY
    return limit != resource.RLIM_INFINITY and value > limit


def parse_rlimits(text: str) -> tuple[RLimit, ...]:
    """Parse the setting strictly; raises ValueError saying which item is wrong and why. Empty: no limits."""
    limits: dict[str, RLimit] = {}
    if not text.strip():
        return ()
    import resource
    for item in text.split(","):
        name, equals, value = item.strip().partition("=")
        name = name.strip()
        if not equals or not name:
            raise ValueError(f"{item!r} is not NAME=VALUE (names: {', '.join(NAMES)})")
        if name not in NAMES:
            raise ValueError(f"unknown limit {name!r} (names: {', '.join(NAMES)})")
        if name in limits:
            raise ValueError(f"{name} is given twice")
        soft_text, colon, hard_text = value.partition(":")
        soft = _value(soft_text, item)
        hard = _value(hard_text, item) if colon else soft
        if _above(soft, hard):
            raise ValueError(f"{item!r}: the soft limit is above the hard limit")
        if name == "CPU" and (colon or soft in (0, resource.RLIM_INFINITY)):
            raise ValueError(f"{item!r}: CPU takes one positive number of seconds per invocation")
        _, current_hard = resource.getrlimit(_number(name))
        if name != "CPU" and os.geteuid() != 0 and _above(hard, current_hard):
            raise ValueError(f"{item!r}: above the hard limit this process may set ({_show(current_hard)})")
        limits[name] = RLimit(name, soft, hard)
    return tuple(limits.values())


def format_rlimits(limits: tuple[RLimit, ...]) -> str:
    """The setting's text for ``limits`` (what the supervisor passes to the worker)."""
    return ",".join(
        f"{limit.name}={_show(limit.soft)}" + ("" if limit.soft == limit.hard else f":{_show(limit.hard)}")
        for limit in limits
    )


def cpu_seconds_used() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def apply_rlimits(limits: tuple[RLimit, ...]) -> None:
    """Set the limits on this process (the worker, before it imports user code). Raises OSError/ValueError."""
    for limit in limits:
        if limit.name == "CPU":
            arm_cpu_limit(limits)
        else:
            import resource

            resource.setrlimit(_number(limit.name), (limit.soft, limit.hard))


def arm_cpu_limit(limits: tuple[RLimit, ...]) -> None:
    """Give the coming invocation its ``CPU=N`` seconds: soft limit = CPU time used so far + N (if CPU is set)."""
    for limit in limits:
        if limit.name == "CPU":
            import math
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CPU)
            soft = math.ceil(cpu_seconds_used()) + limit.soft
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
