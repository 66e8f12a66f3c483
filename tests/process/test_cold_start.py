"""The cold start. What the bootstrap imports before its first response, when the `spare` standby starts and at
what priority, and which strategy the default picks for the function's memory."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS, Runtime, StartRuntime, wait_for

COLD = TASK_ROOTS / "cold"
#: Never imported by the bootstrap, by the supervisor or a worker, whatever happens: the local tools (the emulator,
#: serve, invoke, demo) and what only they need. A Lambda function's package holds neither.
NEVER_IMPORTED = {"lambda_supervisor.local", "requests", "loguru"}
#: Never imported on the way to the first response (a trivial, sync handler).
FORBIDDEN_IMPORTS = {"asyncio", "tenacity", "psutil", *NEVER_IMPORTED}
#: Never imported by the supervisor on its way to the first response: dataclasses (with inspect, ast and dis) is
#: the largest part of its memory at rest; traceback and random are imported only where they are used.
SUPERVISOR_FORBIDDEN = {"dataclasses", "inspect", "ast", "dis", "traceback", "random"}
#: Never imported by any process of the runtime serving a trivial handler (the worker forbids more).
RUNTIME_FORBIDDEN = {"dataclasses", "inspect"}
#: The top-level modules (leaving out private ones) the supervisor imports before its first response: a new one
#: is memory at rest on every instance. re comes with json; gc is built in (off while the modules load). Not socket
#: (with array and errno): the Runtime API connection and the template's control socket are _socket's. Not struct
#: (a timeval is two int.to_bytes). Not signal (its enums; _signal has the same functions and constants,
#: shared/signal_names.py the names). Not selectors (with math): a worker's waits use select.epoll. Not threading
#: (_thread's locks; the idle reaper's thread is started with _thread). Not typing (~4 ms and ~0.5 MB at each cold
#: start): supervisor/ imports it only under TYPE_CHECKING, and nothing else on its path imports it (see
#: test_the_supervisor_does_not_import_typing_before_its_first_next).
SUPERVISOR_TOP_LEVEL = {
    "collections", "copyreg", "enum", "fcntl", "gc", "json", "mmap", "re", "select",
}
SOURCE = Path(__file__).resolve().parents[2]
#: Everything the bootstrap imports before it starts the first worker, beyond what a bare interpreter imports.
BEFORE_THE_FIRST_WORKER = {
    "lambda_supervisor", "lambda_supervisor.supervisor", "lambda_supervisor.supervisor.import_path",
    "lambda_supervisor.supervisor.early_worker", "lambda_supervisor.shared", "lambda_supervisor.shared.worker_env",
    "lambda_supervisor.shared.worker_args", "lambda_supervisor.shared.cpu_handoff",
    "lambda_supervisor.shared.named_tuple", "fcntl", "collections.abc", "__future__",
}
#: Our own modules in a worker serving a plain (sync) handler: a new one is a decision, not an accident.
WORKER_MODULES = {"lambda_supervisor", "lambda_supervisor.shared", "lambda_supervisor.worker"} | {
    f"lambda_supervisor.shared.{name}" for name in (
        "cpu_handoff", "errors", "libc", "named_tuple", "payload_region", "prctl", "printable", "protocol",
        "rlimits", "worker_args", "worker_env")} | {
    f"lambda_supervisor.worker.{name}" for name in (
        "async_runner", "context", "cpu_affinity", "event_source", "handler_loader", "init_leftovers", "invocation",
        "main", "on_import", "output", "registration", "result_json", "serialisers", "serving", "settings",
        "soft_timeout")}
#: Never imported by a worker before the user's code, nor by a trivial invocation: what its own start would pay for
#: every function. typing (~5 ms and ~0.6 MB: shared/named_tuple.py stands in for typing.NamedTuple); logging and
#: traceback (~6 ms and ~1.3 MB: set up when something imports them, worker/on_import.py); http and base64 (the HTTP
#: helpers, used only by handlers that import them); runpy (the worker starts with -c); signal (its enums: the
#: worker's few calls are _signal's); simplejson and decimal (~2.3 ms: a plain result is written by json,
#: worker/result_json.py).
BEFORE_USER_CODE_FORBIDDEN = {"typing", "logging", "traceback", "http", "base64", "runpy", "signal", "simplejson",
                              "decimal"}
#: Never in a worker that serves a plain handler (on top of FORBIDDEN_IMPORTS).
WORKER_FORBIDDEN = {"argparse", "dataclasses", "inspect", "pathlib", "subprocess", "email", "urllib", "uuid",
                    "datetime"}
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)


def imported(log: str) -> set[str]:
    """Every module named in `python -X importtime` output (PYTHONPROFILEIMPORTTIME reaches the workers too)."""
    return set(IMPORT_LINE.findall(log))


def forbidden(modules: set[str], names: set[str] = FORBIDDEN_IMPORTS) -> set[str]:
    """The modules that are one of ``names`` or inside one of them."""
    return {name for name in modules if any(name == bad or name.startswith(bad + ".") for bad in names)}


@pytest.fixture(scope="module")
def regular_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a regular install lays it out (no editable-install finder, which imports pathlib, re and
    urllib at every start and would hide them), assembled from the three folders as pyproject.toml maps them."""
    root = tmp_path_factory.mktemp("install")
    (root / "lambda_supervisor").mkdir()
    for folder in ("supervisor", "worker", "shared", "local"):
        (root / "lambda_supervisor" / folder).symlink_to(Path(__file__).resolve().parents[2] / folder)
    return root


def imports_of(install: Path, statement: str) -> set[str]:
    """What ``python -m`` (os from site, runpy) imports to run ``statement`` with ``install`` and our dependencies
    on its path, and no site-packages ``.pth`` file run."""
    path = [str(install), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    code = f"import sys, os, runpy; sys.path[:0] = {path!r}; before = set(sys.modules); {statement}; " \
           "print(' '.join(set(sys.modules) - before))"
    run = subprocess.run([sys.executable, "-S", "-P", "-c", code], capture_output=True, text=True, check=True)
    return set(run.stdout.split())


def children(runtime: Runtime) -> list[int]:
    return [child.pid for child in psutil.Process(runtime.process.pid).children()]


def test_nothing_heavy_is_imported_on_the_way_to_the_first_response(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"PYTHONPROFILEIMPORTTIME": "1"})
    before_next = imported(runtime.log())  # the supervisor waits in its first `next`: its worker is ready
    assert "lambda_supervisor.supervisor.loop" in before_next and "lambda_supervisor.worker.main" in before_next
    assert forbidden(before_next) == set()
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe()
    assert forbidden(imported(runtime.log())) == set()
    assert forbidden(imported(runtime.log()), RUNTIME_FORBIDDEN) == set()


def test_the_local_tools_are_never_imported_by_the_bootstrap(start_runtime: StartRuntime) -> None:
    """Nor after a crash and the replacement worker (every process of the runtime reports its imports)."""
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    modules = imported(runtime.log())
    assert "lambda_supervisor.supervisor.cli" in modules and "lambda_supervisor.worker.main" in modules
    assert forbidden(modules, NEVER_IMPORTED) == set()


def test_the_first_worker_is_started_after_importing_only_this(regular_install: Path) -> None:
    """What supervisor/__main__.py imports before early_worker.start() launches the first worker."""
    modules = imports_of(regular_install,
                         "import lambda_supervisor.supervisor.import_path, lambda_supervisor.supervisor.early_worker")
    assert modules == BEFORE_THE_FIRST_WORKER


def test_the_worker_imports_exactly_these_modules_of_ours(regular_install: Path) -> None:
    modules = imports_of(regular_install, "import lambda_supervisor.worker.main")
    assert {name for name in modules if name.startswith("lambda_supervisor")} == WORKER_MODULES
    assert forbidden(modules) == set()
    assert {name.partition(".")[0] for name in modules} & WORKER_FORBIDDEN == set()
    assert forbidden(modules, BEFORE_USER_CODE_FORBIDDEN) == set()


SUPERVISOR_BEFORE_ITS_FIRST_NEXT = "import " + ", ".join(
    f"lambda_supervisor.supervisor.{name}" for name in ("cli", "loop", "runtime_api", "respawn", "metrics",
                                                        "worker_launch"))


def test_a_forked_worker_gets_from_the_supervisor_only_what_both_import(regular_install: Path) -> None:
    """early_worker.SHARED_WITH_THE_WORKER (and what they import) is imported before the first worker is forked in
    place: each is imported by a worker anyway, and by the supervisor anyway, and no shared module a worker imports
    is left for it to import again."""
    from lambda_supervisor.supervisor.early_worker import SHARED_WITH_THE_WORKER

    preloaded = imports_of(regular_install, "; ".join(f"import {name}" for name in SHARED_WITH_THE_WORKER))
    worker = imports_of(regular_install, "import lambda_supervisor.worker.main")
    supervisor = imports_of(regular_install, SUPERVISOR_BEFORE_ITS_FIRST_NEXT)
    assert preloaded - worker == set() and preloaded - supervisor == set()
    assert {name for name in worker if name.startswith("lambda_supervisor.shared.")} - preloaded == set()
    assert {"json", "re", "enum"} <= preloaded


def test_the_worker_imports_no_typing_logging_or_traceback_before_the_users_code(start_runtime: StartRuntime) -> None:
    """The user's init sees none of them in sys.modules (a handler that imports one itself pays for it), nor does a
    trivial invocation import one."""
    runtime = start_runtime("modules_at_init.handler", task_root=COLD)
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe()
    at_init = set(record.json()["at_init"])
    assert "lambda_supervisor.worker.main" in at_init
    assert forbidden(at_init, BEFORE_USER_CODE_FORBIDDEN) == set()
    assert forbidden(set(record.json()["now"]), BEFORE_USER_CODE_FORBIDDEN) == set()


@pytest.mark.parametrize(("initialization", "strategy", "at_init", "at_first_result"), [
    ("on-demand", "fresh", False, False),  # the cold start's request waits: a plain result never loads it
    ("provisioned-concurrency", "fresh", True, True),  # init ahead of requests: loaded before your code, as ever
    ("snap-start", "fresh", True, True),
    ("on-demand", "fork", False, True),  # the template loads it once after your init, for every forked worker
])
def test_simplejson_is_loaded_at_init_only_where_no_request_waits_for_it(
        start_runtime: StartRuntime, initialization: str, strategy: str, at_init: bool, at_first_result: bool) -> None:
    runtime = start_runtime("modules_at_init.handler", task_root=COLD, env={
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization, "LAMBDA_SUPERVISOR_RESPAWN": strategy})
    record = runtime.invoke({})
    assert record.outcome_kind == "response", record.describe()
    assert ("simplejson" in record.json()["at_init"]) is at_init
    assert ("simplejson" in record.json()["now"]) is at_first_result


def test_the_supervisor_imports_no_argparse_urllib_or_subprocess_before_the_first_response(
        regular_install: Path) -> None:
    """argparse (with the help formatter it builds, which imports shutil and the compression modules) is for the
    local tools, --help and command-line errors; the bootstrap's own command line is read by hand. urllib.parse
    only quotes a request id that is not a UUID; subprocess starts the workers after the first, which
    early_worker.py started."""
    modules = imports_of(regular_install, "import lambda_supervisor.supervisor.cli, lambda_supervisor.supervisor.loop, "
                         "lambda_supervisor.supervisor.runtime_api, lambda_supervisor.supervisor.metrics")
    assert forbidden(modules) == set()
    assert modules & {"argparse", "urllib.parse", "subprocess"} == set()
    assert forbidden(modules, SUPERVISOR_FORBIDDEN) == set()
    top_level = {name.partition(".")[0] for name in modules if not name.startswith(("_", "lambda_supervisor"))}
    if _importing_typing("shared"):  # until shared/ is rid of typing too: then typing is the one module more
        top_level.discard("typing")
    assert top_level == SUPERVISOR_TOP_LEVEL


def _importing_typing(folder: str) -> list[str]:
    """The modules of ``folder`` that import ``typing`` when they run (not only under ``if TYPE_CHECKING:``)."""
    found = []
    for path in sorted((SOURCE / folder).glob("*.py")):
        pending = list(ast.parse(path.read_text()).body)
        while pending:
            node = pending.pop()
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                pending.extend(node.orelse)
                continue
            if _imports_typing(node):
                found.append(path.name)
            pending.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return found


def _imports_typing(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == "typing" for alias in node.names)
    return isinstance(node, ast.ImportFrom) and node.module == "typing"


def test_supervisor_modules_import_typing_only_for_mypy() -> None:
    assert _importing_typing("supervisor") == []


#: Modules of ours the supervisor imports only once they are needed, never on the way to the first response of a
#: trivial handler: priority (a standby's or template's, started after it), the REPORT line (opt-in), the X-Ray
#: cause (errors only), several slots' memory budget.
AFTER_THE_FIRST_RESPONSE = {f"lambda_supervisor.supervisor.{name}" for name in (
    "priority", "report", "xray_cause", "memory_budget")} | {"lambda_supervisor.shared.xray"}


def test_what_only_later_work_needs_is_imported_when_it_comes(regular_install: Path) -> None:
    modules = imports_of(regular_install, SUPERVISOR_BEFORE_ITS_FIRST_NEXT)
    assert modules & AFTER_THE_FIRST_RESPONSE == set()


def test_the_supervisor_does_not_import_typing_before_its_first_next(regular_install: Path) -> None:
    """typing costs the supervisor ~4 ms of CPU at each cold start and ~0.5 MB at rest, for annotations only."""
    if _importing_typing("shared"):
        pytest.xfail(f"shared/ still imports typing: {', '.join(_importing_typing('shared'))}")
    modules = imports_of(regular_install, "import lambda_supervisor.supervisor.cli, lambda_supervisor.supervisor.loop, "
                         "lambda_supervisor.supervisor.runtime_api, lambda_supervisor.supervisor.respawn, "
                         "lambda_supervisor.shared.cpu_handoff, lambda_supervisor.supervisor.worker_launch")
    assert "typing" not in modules


def test_a_replacement_that_inits_does_not_import_tenacity(start_runtime: StartRuntime) -> None:
    """tenacity (~10 ms to import) is for a replacement whose init fails; a crash's fork does not wait for it."""
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    assert "worker replaced" in runtime.log()
    assert "tenacity" not in imported(runtime.log())


@pytest.mark.parametrize("strategy", ["", "fresh"])
def test_the_supervisor_never_imports_subprocess(start_runtime: StartRuntime, tmp_path: Path, strategy: str) -> None:
    """Workers after the first (the default's template, a fresh replacement) are started with posix_spawn:
    subprocess, with locale and warnings, was ~0.65 MB of the supervisor's memory at rest. A worker serving a plain
    handler does not import it either (WORKER_FORBIDDEN), so any subprocess in the log is the supervisor's."""
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={
        "PYTHONPROFILEIMPORTTIME": "1", "LAMBDA_SUPERVISOR_RESPAWN": strategy, "READY_LOG": str(ready)})
    assert runtime.invoke({}).outcome_kind == "response"
    if not strategy:
        wait_for(lambda: len(ready.read_text().split()) == 2, what="the template's init")
    # nor, at rest, the C modules it used to hold for a call or two (workers import them: the supervisor's own
    # mappings tell; where they are built in, there is nothing to see). A reaped worker's rusage imports resource.
    maps = Path(f"/proc/{runtime.process.pid}/maps").read_text()
    assert [name for name in ("_posixsubprocess", "resource", "_struct") if f"/{name}.cpython" in maps] == []
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    assert len(ready.read_text().split()) == 2, "a worker was started after the first"
    assert "subprocess" not in imported(runtime.log())


def test_the_spare_standby_starts_after_the_first_response_at_idle_priority(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("trivial.handler", task_root=COLD,
                            env={"LAMBDA_SUPERVISOR_RESPAWN": "spare", "LAMBDA_SUPERVISOR_REPORT": "on"})
    assert len(children(runtime)) == 1, "only the first worker runs until the first response is posted"
    first = runtime.invoke({})
    active = first.json()["pid"]
    assert first.json()["policy"] == os.SCHED_OTHER
    standby = wait_for(lambda: [pid for pid in children(runtime) if pid != active], what="the standby")[0]
    log = runtime.log()
    assert log.index(f"REPORT RequestId: {first.request_id}") < log.index("standby worker started"), log
    if os.geteuid() == 0:  # only where idle priority can be undone (see supervisor/priority.py)
        assert os.sched_getscheduler(standby) == os.SCHED_IDLE
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    promoted = runtime.invoke({}).json()
    assert promoted["pid"] == standby
    assert promoted["policy"] == os.SCHED_OTHER, "a promoted standby serves at normal priority"


@pytest.mark.parametrize(("memory_mb", "hold_mb", "template"), [(128, 40, "at-fault"), (1024, 40, "ahead")])
def test_the_default_keeps_a_second_initialised_process_only_where_it_fits(
    start_runtime: StartRuntime, tmp_path: Path, memory_mb: int, hold_mb: int, template: str
) -> None:
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD, env={
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), "HOLD_MB": str(hold_mb), "LAMBDA_SUPERVISOR_RESPAWN": "",
        "READY_LOG": str(ready)})
    chosen = [line for line in runtime.log().splitlines() if "respawn strategy chosen" in line]
    assert len(chosen) == 1 and f"strategy=fork template={template} " in chosen[0], chosen
    assert f"of {memory_mb} MB" in chosen[0], "the line gives the rule's figures"
    first = runtime.invoke({}).json()["pid"]
    if template == "at-fault":
        assert children(runtime) == [first], "no second initialised process where it does not fit"
    else:
        wait_for(lambda: len(ready.read_text().split()) == 2, what="the template's init")
    assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
    assert runtime.invoke({}).outcome_kind == "response"
    replaced = [line for line in runtime.log().splitlines() if "worker replaced" in line]
    assert len(replaced) == 1 and "strategy=fork " in replaced[0], replaced
    assert len(ready.read_text().split()) == 2, "the user's init ran twice: the first worker's and the template's"


def test_faults_in_a_row_are_each_served_by_a_fork(start_runtime: StartRuntime, tmp_path: Path) -> None:
    """Under `auto`, where it fits, the template starts after the first response (at idle priority, where that can
    be undone), so that no fault of a run waits for an init: each costs a fork, served at normal priority."""
    ready = tmp_path / "ready"
    runtime = start_runtime("trivial.handler", task_root=COLD,
                            env={"INIT_SLEEP_S": "1", "LAMBDA_SUPERVISOR_RESPAWN": "", "READY_LOG": str(ready)})
    first = runtime.invoke({}).json()["pid"]
    template = wait_for(lambda: [pid for pid in children(runtime) if pid != first], what="the template")[0]
    if os.geteuid() == 0:  # only where idle priority can be undone (see supervisor/priority.py)
        assert os.sched_getscheduler(template) == os.SCHED_IDLE
    wait_for(lambda: len(ready.read_text().split()) == 2, what="the template's init")
    for _ in range(5):
        assert runtime.invoke({"action": "crash"}).error.error_type == "Runtime.ExitError"
        served = runtime.invoke({}).json()
        assert served["policy"] == os.SCHED_OTHER, "a fork of the template serves at normal priority"
    log = runtime.log()
    ready_ms = [float(ms) for ms in re.findall(r"worker replaced: .* strategy=fork ready_ms=([\d.]+)", log)]
    assert len(ready_ms) == 5, log
    assert max(ready_ms) < 500, f"a replacement waited for an init (1 s): {ready_ms}"
    assert len(ready.read_text().split()) == 2, "the user's init ran only in the first worker and the template"


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def test_the_supervisor_at_rest_holds_little_beyond_its_modules(
        start_runtime: StartRuntime, regular_install: Path) -> None:
    """Its RSS after 20 invocations, against an interpreter that only imported the same modules (as its
    ``-X importtime`` lists them): what the supervisor allocates as it runs (buffers, objects) is small. A read
    buffer per worker that is resident whole (a zeroed 1 MiB bytearray) broke this."""
    path = [str(regular_install), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    prelude = f"import sys; sys.path[:0] = {path!r}"
    python = [sys.executable, "-X", "importtime", "-S", "-P", "-c"]
    runtime = start_runtime("trivial.handler", task_root=COLD, env={"LAMBDA_SUPERVISOR_RESPAWN": "fresh"},
                            command=[*python, f"{prelude}; import lambda_supervisor.supervisor.__main__", "run"])
    for _ in range(20):
        assert runtime.invoke({}).outcome_kind == "response"
    supervisor_kb = _rss_kb(runtime.process.pid)
    modules = [name for name in IMPORT_LINE.findall(runtime.log()) if not name.endswith("__main__")]
    import_each = (f"for name in {modules!r}:\n    if name not in sys.modules:\n"
                   "        try: __import__(name)\n        except Exception: pass\n")
    reference = subprocess.run(
        [*python, f"{prelude}\n{import_each}print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"],
        capture_output=True, text=True, check=False)
    assert reference.returncode == 0, reference.stderr[-2000:]
    beyond_kb = supervisor_kb - int(reference.stdout)
    assert beyond_kb < 768, f"the supervisor holds {beyond_kb} kB beyond its modules' {reference.stdout.strip()} kB"


def test_the_local_tools_run_with_the_collector_on() -> None:
    """__main__.py turns the collector off while the bootstrap's modules load; a local tool started the same way
    (``python -m lambda_supervisor.supervisor serve``) must not run without it."""
    code = ("import gc, sys; gc.disable(); import lambda_supervisor.local.cli as local; "
            "local.run_command = lambda *arguments: print(gc.isenabled()) or 0; "
            "from lambda_supervisor.supervisor.cli import main; sys.exit(main(['serve']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "True", run.stderr
