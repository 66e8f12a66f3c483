"""Reports which CPUs the handler's threads may run on: the main thread, a thread started at import, and a thread
started by the handler itself."""

import os
import threading

_at_import: dict[str, list[int]] = {}
_started = threading.Event()
_asked = threading.Event()


def _import_thread() -> None:
    _at_import["started"] = sorted(os.sched_getaffinity(0))
    _started.set()
    _asked.wait()  # still alive when the handler asks: its mask now, not only at start
    _at_import["later"] = sorted(os.sched_getaffinity(0))


threading.Thread(target=_import_thread, daemon=True).start()
_started.wait()


def handler(event, context):
    in_handler: dict[str, list[int]] = {}

    def own() -> None:
        in_handler["mask"] = sorted(os.sched_getaffinity(0))

    thread = threading.Thread(target=own)
    thread.start()
    thread.join()
    return {
        "pid": os.getpid(),
        "main": sorted(os.sched_getaffinity(0)),
        "import_thread_at_start": _at_import["started"],
        "handler_thread": in_handler["mask"],
    }
