"""The local commands of ``lambda-supervisor``: ``serve``, ``invoke`` and ``demo``, their arguments and their
dispatch. supervisor/cli.py hands a local command here, so the bootstrap's own start never loads them."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lambda_supervisor.shared.printable import log_safe

#: What the local tools need and the bootstrap does not: the ``local`` extra (``dev`` includes it).
LOCAL_EXTRA = frozenset({"requests", "loguru"})
LOCAL_EXTRA_INSTALL = "pip install 'lambda-supervisor[local]'"


def run_command(command: str, parser: argparse.ArgumentParser, arguments: list[str]) -> int:
    """Parse ``arguments`` for the local ``command`` (serve, invoke or demo) with ``parser``, then run it. Without
    the ``local`` extra, say how to install it."""
    run = {"serve": _serve, "invoke": _invoke}.get(command, _demo)
    try:
        return run(parser, arguments)
    except ModuleNotFoundError as missing:
        if missing.name not in LOCAL_EXTRA:
            raise
        parser.error(f"{command} needs {missing.name}, which is not installed: {LOCAL_EXTRA_INSTALL}")


def _default_timeout(parser: argparse.ArgumentParser) -> float:
    text = os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3")
    try:
        return float(text)
    except ValueError:
        parser.error(f"AWS_LAMBDA_FUNCTION_TIMEOUT={log_safe(text)!r} is not a number of seconds")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{log_safe(text)!r} is not a whole number of at least 1")
    return value


def _default_concurrency(parser: argparse.ArgumentParser) -> int:
    text = os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY")
    if text is None:
        return 1
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        parser.error(f"AWS_LAMBDA_MAX_CONCURRENCY={log_safe(text)!r} is not a whole number of at least 1")


def _serve(parser: argparse.ArgumentParser, arguments: list[str]) -> int:
    from .commands import serve

    parser.description = "Serve a handler locally: curl the invoke endpoint as with AWS's emulator."
    parser.add_argument("handler", help="e.g. app.handler")
    parser.add_argument("--task-root", default=".", help="directory with the handler's code (default: .)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--timeout", type=float, default=_default_timeout(parser),
                        help="function timeout in seconds (default: $AWS_LAMBDA_FUNCTION_TIMEOUT, else 3, "
                             "Lambda's default; AWS's emulator defaults to 300)")
    parser.add_argument("--concurrency", type=_positive_int, default=_default_concurrency(parser), metavar="N",
                        help="requests the runtime serves at once, as on Lambda Managed Instances: over 1, the "
                             "runtime gets AWS_LAMBDA_MAX_CONCURRENCY=N and a missed deadline does not reset it "
                             "(default: $AWS_LAMBDA_MAX_CONCURRENCY, else 1)")
    options = parser.parse_args(arguments)
    return serve(options.handler, Path(options.task_root).resolve(), options.host, options.port, options.timeout,
                 options.concurrency)


def _demo(parser: argparse.ArgumentParser, arguments: list[str]) -> int:
    from .commands import demo

    parser.description = "Drive the bundled sample function through every fault on one runtime, and report."
    parser.parse_args(arguments)
    return demo()


def _invoke(parser: argparse.ArgumentParser, arguments: list[str]) -> int:
    parser.description = ("Send the events in a file (a JSON array, one JSON document, or JSON lines) one by one "
                          "(or --concurrency K at once) to HANDLER on a runtime started here, or to a running "
                          "endpoint (--url); print each result and a summary: counts by outcome, throughput, latency "
                          "p50/p99, worker restarts. Exits 1 if an event got no answer or the runtime started here "
                          "died, else 0 (function errors included).")
    parser.add_argument("handler", nargs="?", help="e.g. app.handler (omit with --url)")
    parser.add_argument("--events", required=True, type=Path, help="the events file")
    parser.add_argument("--task-root", default=".", help="directory with the handler's code (default: .)")
    parser.add_argument("--url", help="invoke endpoint of a running serve / emulator / container")
    parser.add_argument("-n", "--count", type=int, help="send this many events, cycling through the file")
    parser.add_argument("--timeout", type=float, default=_default_timeout(parser),
                        help="function timeout in seconds (default: $AWS_LAMBDA_FUNCTION_TIMEOUT, else 3, Lambda's "
                             "default)")
    parser.add_argument("--runtime-log", type=Path, help="where the embedded runtime's log goes (default: a temp file)")
    parser.add_argument("--concurrency", type=_positive_int, default=1, metavar="K",
                        help="keep K invocations in flight at once, each on its own connection (default: 1). A "
                             "runtime started here then gets AWS_LAMBDA_MAX_CONCURRENCY=K, as on Lambda Managed "
                             "Instances, and a missed deadline does not reset it")
    options = parser.parse_args(arguments)
    if options.count is not None and options.count < 1:  # 0 is a slip (an empty variable), not a request for nothing
        parser.error("--count must be at least 1")
    if (options.url is None) == (options.handler is None):
        parser.error("give either HANDLER (to start a runtime here) or --url (to use a running one)")
    from . import commands, invoke
    try:
        events = invoke.load_events(options.events)
    except invoke.EventFileError as error:
        parser.error(str(error))
    count = len(events) if options.count is None else options.count
    if options.url is not None:
        started = time.monotonic()
        results = invoke.send_all(options.url, events, count, options.timeout + 30, concurrency=options.concurrency)
        invoke.summarize(results, time.monotonic() - started, None, sys.stdout, options.concurrency)
        return 0 if all(result.answered for result in results) else 1
    return commands.invoke_embedded(options.handler, Path(options.task_root).resolve(), events, count,
                                    options.timeout, options.runtime_log, options.concurrency)
