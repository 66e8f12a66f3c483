"""The ``lambda-supervisor`` command.

``lambda-supervisor [run] [HANDLER]`` is the Lambda bootstrap (so an image's ``CMD ["app.handler"]`` works);
``serve`` and ``demo`` run a function locally against the embedded Runtime API emulator; ``invoke`` sends a file
of events to a function (``serve``'s endpoint, or one it starts) and summarises the outcomes. Those three live in
``lambda_supervisor.local`` (local/), imported only when one of them is asked for.
"""

from __future__ import annotations

import gc
import os
import sys

from lambda_supervisor.shared.errors import ErrorType, error_object
from lambda_supervisor.shared.prctl import set_child_subreaper, set_dumpable
from lambda_supervisor.shared.printable import log_safe

from .config import SETTINGS, Config, ConfigError
from .exit_codes import ExitCode
from .logs import configure_logging, log

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's

if TYPE_CHECKING:
    from .worker_launch import Launched

COMMANDS = ("run", "serve", "demo", "invoke")
SUMMARY = """\
usage: lambda-supervisor [run] [HANDLER] [--task-root DIR]
       lambda-supervisor {serve,invoke,demo} ... (each with --help)

commands:
  run     the Lambda bootstrap: talk to $AWS_LAMBDA_RUNTIME_API (the default: `lambda-supervisor app.handler`)
  serve   serve a handler locally on AWS's invoke endpoint (port 8080), for curl
  invoke  send a file of events to a handler (started here, or --url) and summarise the outcomes
  demo    drive a bundled sample function through every fault on one runtime, and report
"""


def _command_and_arguments(arguments: list[str]) -> tuple[str, list[str]] | str:
    """The command and its arguments, or an error message. A first word that is neither a command nor an option is
    the handler of the bootstrap form (``lambda-supervisor app.handler``) when it has a dot, as every handler does
    (``module.function``); without one it is a mistyped command."""
    if not arguments or arguments[0].startswith("-"):
        return "run", arguments
    first, rest = arguments[0], arguments[1:]
    if first in COMMANDS:
        return first, rest
    if "." in first:
        return "run", arguments
    import difflib  # only on this error path: the bootstrap's start stays lean

    close = difflib.get_close_matches(first, COMMANDS, n=1)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"lambda-supervisor: unknown command {log_safe(first)!r}{suggestion}; the commands are "
            f"{', '.join(COMMANDS)}, and a handler (module.function) alone means run")


def _settings_help() -> str:
    return "environment (wins over flags):\n" + "\n".join(
        f"  {setting.variable:<40} default {setting.default_text()}" for setting in SETTINGS)


def run_bootstrap(handler: str | None, task_root: str | None) -> int:
    # First of all: a worker runs as our user, and must not read our environment (the Runtime API address) or
    # memory through /proc, nor ptrace us. Workers are exec'd, which makes them dumpable again.
    undumpable = set_dumpable(False)
    defaults = {name: value for name, value in (("_HANDLER", handler), ("LAMBDA_TASK_ROOT", task_root)) if value}
    try:
        config = Config.load(os.environ, defaults)
    except ConfigError as error:
        _discard_early_worker()
        configure_logging(log_format=os.environ.get("AWS_LAMBDA_LOG_FORMAT", "Text"))
        log("ERROR", f"invalid configuration: {log_safe(str(error))}")
        _report_config_error(str(error))
        return ExitCode.CONFIG_ERROR
    configure_logging(config.log_level, config.log_format)
    if not undumpable:
        log("WARNING", "could not make the supervisor non-dumpable: workers of the same user can read its /proc")
    first_worker = _launch_first_worker(config)
    from lambda_supervisor.shared.cpu_handoff import CpuHandoff

    from .loop import Supervisor  # imported while the first worker starts; a config error does not pay for it
    from .metrics import configure_metrics
    from .process_tree import Children
    from .respawn import make_factory
    from .runtime_api import RuntimeApiClient

    configure_metrics(config)

    several = config.concurrency > 1  # each slot's long poll can then be ended from the main thread
    api = RuntimeApiClient(config.runtime_api, retry_seconds=config.api_retry_s, interruptible=several)
    children = Children()
    factory = make_factory(config, os.environ, children, CpuHandoff.plan() if _shares_cpu(config) else None)
    factory.prelaunched = first_worker
    gc.freeze()  # what is loaded by now lives as long as we do: no collection ever needs to sweep it
    gc.enable()  # off while the modules loaded (__main__.py)
    return Supervisor(config, api, os.environ, factory, children,
                      make_api=lambda: RuntimeApiClient(config.runtime_api, retry_seconds=config.api_retry_s,
                                                        interruptible=True)).run()


def _discard_early_worker() -> None:
    from .early_worker import take

    early = take()
    if early is not None:
        early.discard()


def _launch_first_worker(config: Config) -> Launched | None:
    """The first worker: the one started from the bootstrap's first lines if it was started as it should be (see
    early_worker.py), else one started now, before the rest of the supervisor is imported, so that its interpreter
    start and imports overlap ours. (Under ``fork``, and ``auto`` with several slots, the first process is the
    template, started by its factory.)"""
    if config.respawn == "fork" or (config.respawn == "auto" and config.concurrency > 1):
        _discard_early_worker()
        return None
    from lambda_supervisor.shared.cpu_handoff import CpuHandoff

    from .early_worker import take
    from .worker_launch import claim, launch

    cpu_handoff = CpuHandoff.plan() if _shares_cpu(config) else None
    early = take()
    launched = claim(early, config, os.environ, cpu_handoff) if early is not None else None
    log("DEBUG", f"first worker: {'started early' if launched else 'started now'}")
    if launched is not None:
        return launched
    set_child_subreaper(True)  # as the loop would before its first worker (it checks and says so if it fails)
    return launch(config, os.environ, None, cpu_handoff)


def _shares_cpu(config: Config) -> bool:
    """One slot only: with several, every slot's thread would wait on the one home CPU."""
    return config.share_cpu and config.concurrency == 1


def _report_config_error(message: str) -> None:
    """Tell Lambda why init failed, when at least the Runtime API address is usable."""
    from .runtime_api import RuntimeApiClient, RuntimeApiUnavailable

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    try:
        Config.load({**os.environ, "_HANDLER": "x.y", "LAMBDA_TASK_ROOT": "/"}, {})
    except ConfigError as error:
        if error.variable == "AWS_LAMBDA_RUNTIME_API":
            return
    client = RuntimeApiClient(address, retry_seconds=2.0)
    try:
        client.post_init_error(error_object(ErrorType.CONFIGURATION, message))
    except RuntimeApiUnavailable as problem:
        log("ERROR", f"could not report the configuration error: {problem}")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments in (["-h"], ["--help"]):
        print(SUMMARY + "\n" + _settings_help())
        return 0
    parsed = _command_and_arguments(arguments)
    if isinstance(parsed, str):
        print(parsed, file=sys.stderr)
        return 2
    command, arguments = parsed
    if command == "run":  # the bootstrap's own command line, as read before the first worker started
        from lambda_supervisor.shared import worker_env

        from .early_worker import bootstrap_defaults

        defaults = bootstrap_defaults(arguments)
        if defaults is not None:  # else argparse, for help or an error message
            return run_bootstrap(defaults.get(worker_env.HANDLER), defaults.get(worker_env.TASK_ROOT))
    import argparse  # only off the bootstrap's path: with its help formatter, it costs ~10 ms

    parser = argparse.ArgumentParser(
        prog=f"lambda-supervisor {command}", epilog=_settings_help(), formatter_class=argparse.RawTextHelpFormatter)
    if command == "run":
        parser.description = "Run as the Lambda bootstrap against $AWS_LAMBDA_RUNTIME_API."
        parser.add_argument("handler", nargs="?", help="default for _HANDLER, e.g. app.handler")
        parser.add_argument("--task-root", help="default for LAMBDA_TASK_ROOT")
        options = parser.parse_args(arguments)
        return run_bootstrap(options.handler, options.task_root)
    gc.enable()  # off while the bootstrap's modules load (__main__.py); the local tools run with it, as ever
    from lambda_supervisor.local.cli import run_command  # the local tools: never on the bootstrap's path

    return run_command(command, parser, arguments)
