"""The supervisor's configuration: Lambda's own environment plus ``LAMBDA_SUPERVISOR_*`` settings.

Every setting is declared once in :data:`SETTINGS` (variable, parser, default, meaning), which is what validation,
``--help`` and the README's configuration table are built from. Command-line flags only supply defaults: the
environment always wins, because on Lambda the environment is what the function's owner configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from lambda_supervisor.shared.rlimits import RLimit, parse_rlimits
from lambda_supervisor.shared.worker_env import LAMBDA_RESPONSE_LIMIT_BYTES, frame_payload_limit

from .frozen import Frozen

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from typing import Any

#: Memory the supervisor keeps for itself (its interpreter, requests, psutil) out of the function's memory size.
SUPERVISOR_RESERVE_MB = 48
DEFAULT_MEMORY_SIZE_MB = 3008  # what AWS's runtime interface emulator assumes when no size is given
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
#: Lambda's advanced logging controls: the log formats and the application log levels it sets.
LOG_FORMATS = ("Text", "JSON")
LAMBDA_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LOG_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
#: How long before Lambda's deadline a hang is answered, by default: sized from the deadline-to-post latency
#: measured under CPU load (README, "Timeouts"), with room for a small function's fraction of a vCPU.
DEFAULT_TIMEOUT_MARGIN_MS = 150
MAX_TIMEOUT_MARGIN_MS = 10_000
#: The most slots (concurrent invocations) one supervisor runs: Lambda Managed Instances allow 64 per vCPU.
MAX_CONCURRENCY = 1024


class ConfigError(ValueError):
    """A setting has a value we cannot use; ``variable`` is its name, which the message names too."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _timeout_margin_ms(text: str) -> int:
    value = _non_negative_int(text)
    if value > MAX_TIMEOUT_MARGIN_MS:
        raise ValueError(f"must be at most {MAX_TIMEOUT_MARGIN_MS} (a margin, not a timeout)")
    return value


#: What a host name (or IPv4 address) and a bracketed IPv6 address may be made of. Checked with str.strip, not a
#: regular expression: compiling one costs ~0.2 ms on the way to the first response.
_HOST_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
_IPV6_CHARACTERS = "0123456789ABCDEFabcdef:"
_NAMESPACE_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/#:- "


def _only(text: str, characters: str) -> bool:
    """Whether ``text`` is not empty and made of ``characters`` only."""
    return bool(text) and not text.strip(characters)


def _runtime_api(text: str) -> str:
    """``host:port``: a host name, an IPv4 address or a bracketed IPv6 one, and a port from 1 to 65535."""
    host, colon, port = text.rpartition(":")
    bracketed = host[:1] == "[" and host[-1:] == "]" and _only(host[1:-1], _IPV6_CHARACTERS)
    if not (colon and (bracketed or _only(host, _HOST_CHARACTERS)) and len(port) <= 5 and _only(port, "0123456789")
            and 0 < int(port) < 65536):
        raise ValueError("must be host:port, with a port from 1 to 65535")
    return text


def _handler(text: str) -> str:
    if not text.strip():
        raise ValueError("must name the handler, such as app.handler")
    return text.strip()


def _directory(text: str) -> str:
    path = os.path.realpath(text)  # os.path, not pathlib: pathlib would be the bootstrap's largest import
    if not os.path.isdir(path):
        raise ValueError(f"directory {path!r} does not exist")
    return path


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


RESPAWN_STRATEGIES = ("auto", "fresh", "spare", "fork")


def _respawn_strategy(text: str) -> str:
    strategy = text.strip().lower()
    if strategy not in RESPAWN_STRATEGIES:
        raise ValueError(f"must be one of {', '.join(RESPAWN_STRATEGIES)}")
    return strategy


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be zero or a positive number")
    return value


def _log_format(text: str) -> str:
    for name in LOG_FORMATS:
        if text.strip().lower() == name.lower():
            return name
    raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")


def _lambda_log_level(text: str) -> str:
    level = text.strip().upper()
    if not level:
        return ""
    level = _LOG_LEVEL_ALIASES.get(level, level)
    if level not in LAMBDA_LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LAMBDA_LOG_LEVELS)}")
    return level


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError("must be on or off")


def _namespace(text: str) -> str:
    if not (len(text) <= 255 and _only(text, _NAMESPACE_CHARACTERS)) or not text.strip():
        raise ValueError("must be 1 to 255 letters, digits, spaces or . - _ / # :")
    return text


def _max_concurrency(text: str) -> int:
    value = int(text)
    if not 0 < value <= MAX_CONCURRENCY:
        raise ValueError(f"must be from 1 to {MAX_CONCURRENCY}")
    return value


def _default_concurrency(values: Mapping[str, Any]) -> int:
    return int(values["lambda_max_concurrency"])


def workers_memory_mb(memory_size_mb: int) -> int:
    """What all workers together (and the fork template) may hold: the memory size minus the supervisor's reserve,
    but at least half of it."""
    return max(memory_size_mb - SUPERVISOR_RESERVE_MB, memory_size_mb // 2, 1)


def _default_max_rss_mb(values: Mapping[str, Any]) -> int:
    """One slot: all of the workers' memory. N slots: twice a fair share (a request may grow while others are
    small; the total across slots is enforced apart, see memory_budget.py), never more than the total."""
    total = workers_memory_mb(int(values["memory_size_mb"]))  # never 0, which an explicit value may not be
    slots = int(values["concurrency"])
    return total if slots <= 1 else max(min(total, 2 * total // slots), 1)


class Setting(Frozen):
    """One configurable value: where it comes from, how it is checked, and what it means."""

    __slots__ = ("default", "field", "meaning", "parse", "required", "variable")
    field: str
    variable: str
    parse: Callable[[str], Any]
    default: Any | Callable[[Mapping[str, Any]], Any]
    meaning: str
    required: bool

    def __init__(self, field: str, variable: str, parse: Callable[[str], Any],
                 default: Any | Callable[[Mapping[str, Any]], Any], meaning: str, required: bool = False) -> None:
        self._set(field=field, variable=variable, parse=parse, default=default, meaning=meaning, required=required)

    def default_text(self) -> str:
        if self.required:
            return "(required)"
        if callable(self.default):
            return "derived"
        return str(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting("runtime_api", "AWS_LAMBDA_RUNTIME_API", _runtime_api, None,
            "host:port of the Runtime API (set by Lambda; by `serve` locally). Never passed to the worker.", True),
    Setting("handler", "_HANDLER", _handler, None,
            "The handler, `module.function` or `dir/module.function` (or the first argument, as in an image's CMD).",
            True),
    Setting("task_root", "LAMBDA_TASK_ROOT", _directory, ".",
            "Directory holding the user's code; first on the worker's sys.path, never on the supervisor's."),
    Setting("function_name", "AWS_LAMBDA_FUNCTION_NAME", str, "function", "Seen by handlers as context.function_name."),
    Setting("function_version", "AWS_LAMBDA_FUNCTION_VERSION", str, "$LATEST", "context.function_version."),
    Setting("memory_size_mb", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", _positive_int, DEFAULT_MEMORY_SIZE_MB,
            "The function's memory size in MB; context.memory_limit_in_mb and the base of the RSS limit."),
    Setting("lambda_max_concurrency", "AWS_LAMBDA_MAX_CONCURRENCY", _max_concurrency, 1,
            "Set by Lambda Managed Instances: how many invocations one execution environment serves at once. The "
            "default of `LAMBDA_SUPERVISOR_CONCURRENCY`."),
    Setting("concurrency", "LAMBDA_SUPERVISOR_CONCURRENCY", _max_concurrency, _default_concurrency,
            "How many slots the supervisor runs, each with its own worker and its own `next` long poll (default: "
            "`AWS_LAMBDA_MAX_CONCURRENCY`, else 1). A fault, a timeout or a memory kill costs only its own slot's "
            "request. See 'Managed Instances'."),
    Setting("log_group_name", "AWS_LAMBDA_LOG_GROUP_NAME", str, "", "context.log_group_name."),
    Setting("log_stream_name", "AWS_LAMBDA_LOG_STREAM_NAME", str, "", "context.log_stream_name."),
    Setting("max_rss_mb", "LAMBDA_SUPERVISOR_MAX_RSS_MB", _positive_int, _default_max_rss_mb,
            "Hard memory limit: a worker whose PSS, with its children and daemons (a shared page counts once), is "
            "above this is killed, the request fails with Runtime.OutOfMemory. "
            f"Default: memory size minus {SUPERVISOR_RESERVE_MB} MB for the supervisor, "
            "but at least half the memory size; with N slots, twice that divided by N (at most all of it), and "
            "all workers together are held to all of it (the largest is killed when they are over)."),
    Setting("respawn", "LAMBDA_SUPERVISOR_RESPAWN", _respawn_strategy, "auto",
            "How a replacement worker is made: `fresh` (new interpreter, user init re-run), `spare` (a standby "
            "worker, initialised ahead, is promoted at once), `fork` (a template that ran user init once forks "
            "workers, copy-on-write), `auto` (`fork`, its template started after the first response if the "
            "supervisor and two workers, as measured after the first init, take at most 60% of the memory size, "
            "else at the first fault; but `spare` if that fits and the first init left a socket open or a thread "
            "running, which forks would share or lack). See 'Respawn strategies'."),
    Setting("max_invocations", "LAMBDA_SUPERVISOR_MAX_INVOCATIONS", _non_negative_int, 0,
            "Recycle the worker after this many invocations, between two requests (0: never)."),
    Setting("max_invocations_jitter", "LAMBDA_SUPERVISOR_MAX_INVOCATIONS_JITTER", _non_negative_int, 0,
            "Add a random 0..N to each worker's invocation limit, so workers do not all recycle at once."),
    Setting("recycle_rss_mb", "LAMBDA_SUPERVISOR_RECYCLE_RSS_MB", _non_negative_int, 0,
            "Soft memory limit: a worker whose RSS is above this after an invocation is recycled before the next "
            "(0: off). Unlike the hard limit, no request fails."),
    Setting("max_worker_age_s", "LAMBDA_SUPERVISOR_MAX_WORKER_AGE_S", _non_negative_float, 0.0,
            "Recycle a worker older than this many seconds, between two requests (0: never)."),
    Setting("soft_timeout_ms", "LAMBDA_SUPERVISOR_SOFT_TIMEOUT_MS", _non_negative_int, 0,
            "This long before the timeout is posted (the deadline minus the timeout margin), raise SoftTimeoutError "
            "(a TimeoutError) inside the handler so it can clean up; the hard kill stays (0: off). Uses SIGALRM in "
            "the worker. Ignored, with one "
            "warning, when not shorter than the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT if set, else the time "
            "left when an event arrives)."),
    Setting("timeout_margin_ms", "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS", _timeout_margin_ms,
            DEFAULT_TIMEOUT_MARGIN_MS,
            "A hung invocation's Runtime.Timeout is posted this long before Lambda's deadline, then its worker is "
            "killed and replaced: Lambda resets the whole execution environment when a deadline passes unanswered. "
            f"0 to {MAX_TIMEOUT_MARGIN_MS}; an event arriving with less time left is answered at once."),
    Setting("respawn_attempts", "LAMBDA_SUPERVISOR_RESPAWN_ATTEMPTS", _positive_int, 5,
            "After a fault, how many times a replacement worker that fails init is retried (with jittered "
            "exponential backoff) before the init error is reported and the runtime exits."),
    Setting("max_response_bytes", "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES", _positive_int, LAMBDA_RESPONSE_LIMIT_BYTES,
            "Largest response a handler may return; larger gives Runtime.ResponseSizeTooLarge."),
    Setting("init_timeout_s", "LAMBDA_SUPERVISOR_INIT_TIMEOUT_S", _positive_float, 120.0,
            "How long a worker may take to import the handler before init fails with Runtime.InitTimeout."),
    Setting("memory_poll_ms", "LAMBDA_SUPERVISOR_MEMORY_POLL_MS", _positive_int, 20,
            "How often a running invocation's memory is checked against the hard limit (the RSS sum; PSS once that "
            "is over the limit)."),
    Setting("shutdown_grace_ms", "LAMBDA_SUPERVISOR_SHUTDOWN_GRACE_MS", _non_negative_int, 500,
            "On SIGTERM, how long the worker may take to exit after it is forwarded the signal, before SIGKILL."),
    Setting("api_retry_s", "LAMBDA_SUPERVISOR_API_RETRY_S", _positive_float, 10.0,
            "How long transient Runtime API faults are retried (jittered backoff) before the supervisor exits."),
    Setting("log_format", "AWS_LAMBDA_LOG_FORMAT", _log_format, "Text",
            "`Text` or `JSON` (Lambda's log format setting), for the handler's output and the supervisor's lines."),
    Setting("app_log_level", "AWS_LAMBDA_LOG_LEVEL", _lambda_log_level, "",
            "Level of the handler's `logging` records: TRACE, DEBUG, INFO, WARN, ERROR or FATAL. Unset: INFO in "
            "JSON format; in Text format the root logger keeps Python's default (WARNING), as on Lambda."),
    Setting("rlimits", "LAMBDA_SUPERVISOR_RLIMITS", parse_rlimits, "",
            "Resource limits the worker sets on itself before importing your code, e.g. "
            "`NOFILE=256,NPROC=64,CORE=0,CPU=30`: `NAME=N` or `NAME=SOFT:HARD` (or `unlimited`) for AS, CORE, CPU, "
            "DATA, FSIZE, MEMLOCK, NOFILE, NPROC, STACK. `CPU=N` is N CPU seconds per invocation; a handler over it "
            "is ended by SIGXCPU (Runtime.ExitError). Children inherit the limits."),
    Setting("log_level", "LAMBDA_SUPERVISOR_LOG_LEVEL", _log_level, "INFO", "Level of the supervisor's own log lines."),
    Setting("share_cpu", "LAMBDA_SUPERVISOR_SHARE_CPU", _switch, "on",
            "With several vCPUs, the supervisor and the idle worker wait on one CPU, so handing an event over and "
            "back needs no cross-CPU wake-up; handlers (and their threads) still run on every vCPU. That CPU moves "
            "when something else keeps it busy and another is idle. `off`: no CPU affinity is set. Never with "
            "several slots."),
    Setting("pipeline_next", "LAMBDA_SUPERVISOR_PIPELINE_NEXT", _switch, "on",
            "`on`: after a handler's answer, `next` is asked in the same write as the post (HTTP/1.1 pipelining), "
            "unless the worker is then to be replaced or a standby or fork template started; awslambdaric waits "
            "for the post's answer first. `off`: `next` is asked once the post is answered and the upkeep is done."),
    Setting("report", "LAMBDA_SUPERVISOR_REPORT", _switch, "off",
            "`on`: a REPORT line per invocation (duration, worker, peak RSS, outcome) and, with metrics on, its "
            "per-invocation metrics (Invocations, Errors, Faults, Duration). `off`: only what Lambda cannot see is "
            "logged: faults, worker replacements and recycles, init failures."),
    Setting("metrics", "LAMBDA_SUPERVISOR_METRICS", _switch, "on",
            "`off` stops the CloudWatch Embedded Metric Format lines (restarts and time to ready, init failures, "
            "and the per-invocation metrics of `LAMBDA_SUPERVISOR_REPORT`). Off by default for runtimes started by "
            "`serve`, `demo` and `invoke`."),
    Setting("metrics_namespace", "LAMBDA_SUPERVISOR_METRICS_NAMESPACE", _namespace, "LambdaSupervisor",
            "CloudWatch namespace of those metrics."),
)


class Config(Frozen):
    """Every setting's value, by its ``Setting.field`` (built by :meth:`load`)."""

    __slots__ = (
        "api_retry_s",
        "app_log_level",
        "concurrency",
        "function_name",
        "function_version",
        "handler",
        "init_timeout_s",
        "lambda_max_concurrency",
        "log_format",
        "log_group_name",
        "log_level",
        "log_stream_name",
        "max_invocations",
        "max_invocations_jitter",
        "max_response_bytes",
        "max_rss_mb",
        "max_worker_age_s",
        "memory_poll_ms",
        "memory_size_mb",
        "metrics",
        "metrics_namespace",
        "pipeline_next",
        "recycle_rss_mb",
        "report",
        "respawn",
        "respawn_attempts",
        "rlimits",
        "runtime_api",
        "share_cpu",
        "shutdown_grace_ms",
        "soft_timeout_ms",
        "task_root",
        "timeout_margin_ms",
    )
    runtime_api: str
    handler: str
    task_root: str
    function_name: str
    function_version: str
    memory_size_mb: int
    lambda_max_concurrency: int
    concurrency: int
    log_group_name: str
    log_stream_name: str
    max_rss_mb: int
    respawn: str
    max_invocations: int
    max_invocations_jitter: int
    recycle_rss_mb: int
    max_worker_age_s: float
    soft_timeout_ms: int
    timeout_margin_ms: int
    respawn_attempts: int
    max_response_bytes: int
    init_timeout_s: float
    memory_poll_ms: int
    shutdown_grace_ms: int
    api_retry_s: float
    log_format: str
    app_log_level: str
    rlimits: tuple[RLimit, ...]
    log_level: str
    share_cpu: bool
    pipeline_next: bool
    report: bool
    metrics: bool
    metrics_namespace: str

    def __init__(self, **values: Any) -> None:
        missing, unknown = set(self.__slots__) - set(values), set(values) - set(self.__slots__)
        if missing or unknown:
            raise TypeError(f"Config needs exactly its fields: missing {sorted(missing)}, unknown {sorted(unknown)}")
        self._set(**values)

    @property
    def max_rss_bytes(self) -> int:
        return self.max_rss_mb * 1024 * 1024

    @property
    def total_rss_bytes(self) -> int:
        """What all workers together may hold (enforced only with several slots, see memory_budget.py)."""
        return workers_memory_mb(self.memory_size_mb) * 1024 * 1024

    @property
    def max_frame_payload_bytes(self) -> int:
        """What the supervisor accepts from the worker: the response limit plus room for an error object."""
        return frame_payload_limit(self.max_response_bytes)

    @classmethod
    def load(cls, environ: Mapping[str, str], defaults: Mapping[str, str] | None = None) -> Config:
        """Build the configuration; ``defaults`` (variable -> text, from CLI flags) apply where the environment is
        silent. Raises ConfigError naming the first variable whose value is unusable."""
        defaults = defaults or {}
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            text = environ.get(setting.variable) or defaults.get(setting.variable)
            if text is None or text == "":
                if setting.required:
                    raise ConfigError(setting.variable, f"{setting.variable} is not set: {setting.meaning}")
                default = setting.default
                values[setting.field] = default(values) if callable(default) else (
                    setting.parse(default) if isinstance(default, str) and setting.parse is not str else default
                )
                continue
            try:
                values[setting.field] = setting.parse(text)
            except ValueError as error:
                raise ConfigError(setting.variable, f"{setting.variable}={text!r} is invalid: {error}") from None
        return cls(**values)


def settings_table() -> str:
    """The README's configuration table, in Markdown (tests check that the README carries exactly this)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default_text()
        shown = default if default in ("(required)", "derived") else f"`{default}`" if default else "(empty)"
        rows.append(f"| `{setting.variable}` | {shown} | {setting.meaning} |")
    return "\n".join(rows)
