"""The first worker as a fork of the bootstrap's interpreter, without exec (supervisor/early_worker.py forks it).

An exec'd worker starts a fresh interpreter: the Runtime API address is simply not in the environment it is given,
and nothing of the supervisor's is left. A plain fork of the bootstrap saves that interpreter start, so here the
child makes itself what the exec'd ``python -P -u -c ...`` worker would have been before any user code can
run: the withheld variables are erased (their bytes zeroed where they lie: the process's original environment block,
which /proc/self/environ shows, and the bytes objects of ``posix.environ``), then removed from ``os.environ``,
``posix.environ`` and the C environ; ``sys.path``, ``sys.argv``, ``sys.orig_argv`` and ``__main__`` are set as
``-c`` sets them, and the supervisor's modules are forgotten. Only ``os`` and ``sys`` are used: this runs first.
"""

from __future__ import annotations

import os
import posix
import sys

#: Where a bytes object's data starts, from its address (CPython: the header, then ``ob_sval``).
BYTES_DATA_OFFSET = bytes.__basicsize__ - 1
#: Fields 50 and 51 of /proc/self/stat (proc(5)), counted after the command name's closing parenthesis.
ENV_START_FIELD, ENV_END_FIELD = 50 - 3, 51 - 3
SUPERVISOR_PACKAGE = "lambda_supervisor.supervisor"
#: Imported before the fork for the supervisor alone (``-m``: runpy; early_worker.py: fcntl),
#: and this module: an exec'd ``-c`` worker has none of them (tests/process/test_forked_worker.py compares the two
#: workers' modules).
LEFTOVERS = ("runpy", "fcntl", __name__)


class CannotClean(Exception):
    """The child could not erase what it must not keep: the caller execs the worker instead."""


def _environment_block() -> tuple[int, int]:
    """The process's original environment block (its address range), as the kernel recorded it at exec."""
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    try:
        stat = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = stat.rsplit(b")", 1)[1].split()
    return int(fields[ENV_START_FIELD]), int(fields[ENV_END_FIELD])


def _zero_block_entries(mem_fd: int, names: frozenset[bytes]) -> None:
    """Zero every ``NAME=value`` entry of the original environment block whose name is in ``names``."""
    start, end = _environment_block()
    block = os.pread(mem_fd, end - start, start)
    offset = 0
    for entry in block.split(b"\0"):
        if entry.split(b"=", 1)[0] in names:
            os.pwrite(mem_fd, bytes(len(entry)), start + offset)
        offset += len(entry) + 1


def _zero_and_drop(mem_fd: int, key: bytes) -> None:
    """Zero the bytes of the variable's value objects (none was ever decoded: see early_worker.start), then drop the
    variable from ``posix.environ``, ``os.environ`` and the C environ."""
    data: dict[bytes, bytes] = getattr(os.environ, "_data")  # noqa: B009 (os.environ's encoded store)
    values = {id(value): value for value in (posix.environ.get(key), data.get(key)) if value is not None}
    for address, value in values.items():
        if len(value) > 1:  # the empty and one-byte objects are shared singletons: nothing to hide in them anyway
            os.pwrite(mem_fd, bytes(len(value)), address + BYTES_DATA_OFFSET)
    values.clear()
    posix.environ.pop(key, None)
    data.pop(key, None)
    os.unsetenv(key)


def erase_variables(names: tuple[str, ...]) -> None:
    """Erase ``names`` from every copy of the environment this process holds; raises CannotClean if it cannot."""
    keys = frozenset(os.fsencode(name) for name in names)
    try:
        mem_fd = os.open("/proc/self/mem", os.O_RDWR)
    except OSError as error:
        raise CannotClean(f"/proc/self/mem: {error}") from None
    try:
        _zero_block_entries(mem_fd, keys)
        for key in keys:
            _zero_and_drop(mem_fd, key)
    except (OSError, ValueError, IndexError) as error:
        raise CannotClean(str(error)) from None
    finally:
        os.close(mem_fd)


def _forget_the_supervisor() -> None:
    """Drop the supervisor's modules (the worker never imports them) and give ``-c`` a fresh ``__main__``."""
    ours = [name for name in sys.modules if name == SUPERVISOR_PACKAGE or name.startswith(SUPERVISOR_PACKAGE + ".")]
    for name in [*ours, *LEFTOVERS]:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)
    main = type(sys)("__main__")
    main.__dict__.update(__builtins__=sys.modules["builtins"], __annotations__={})
    sys.modules["__main__"] = main


def become_worker(command: list[str], path: list[str]) -> None:
    """Run the worker as the exec'd ``command`` (``python -P -u -c CODE ARGS...``, shared/worker_args.py's
    WORKER_COMMAND) would, with the import path the interpreter started with; raises SystemExit with the worker's
    status."""
    code = command[4]
    sys.path[:] = path
    sys.orig_argv = list(command)
    sys.argv[:] = ["-c", *command[5:]]  # as -c sets it; worker/start.py then names its __main__.py, as it does
    _forget_the_supervisor()
    exec(compile(code, "<string>", "exec"), sys.modules["__main__"].__dict__)  # what -c runs: our own fixed code
    raise SystemExit(0)
