"""The Runtime API on Go's net/http (bench/go_runtime_api), built with ``go build`` where Go is installed.

Lambda's own Runtime API is a Go server. This one answers each ``next`` with the next event as soon as there is
one, as the lean one does (bench/lean_api.py, whose control protocol it speaks), but through net/http's own
request handling, pipelining included; and it refuses a ``next`` that comes while an event is unanswered, which
the bench then reports. Without Go the bench's row says so (``apt-get install golang-go``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .lean_api import LeanRuntimeApi

SOURCE = Path(__file__).resolve().parent / "go_runtime_api"
BINARY = Path(__file__).resolve().parent / "results" / "go-runtime-api"
BUILD_TIMEOUT_S = 300.0


def go_available() -> bool:
    return shutil.which("go") is not None


def build() -> Path:
    """The server's binary, built again when its source is newer."""
    newest = max(path.stat().st_mtime for path in SOURCE.iterdir())
    if not BINARY.exists() or BINARY.stat().st_mtime < newest:
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(BINARY), "."], cwd=SOURCE, check=True, timeout=BUILD_TIMEOUT_S)
    return BINARY


class GoRuntimeApi(LeanRuntimeApi):
    """The Go server's process, driven as the lean one (``run``, ``next_poll_count``, ``wait_next_polled``)."""

    name = "the Go Runtime API"

    def __init__(self) -> None:
        super().__init__()  # no pause: the Go server hands each event out as soon as it is asked for

    def command(self) -> list[str]:
        return [str(build())]
