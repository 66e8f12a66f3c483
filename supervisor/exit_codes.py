"""Why the supervisor process ended, as its exit status (Lambda restarts the sandbox on any non-zero exit)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import IntEnum as _Names
else:
    _Names = object  # mypy reads an enum; at run time plain int constants (an enum class costs ~0.1 ms at start)


class ExitCode(_Names):
    OK = 0  # shut down on SIGTERM / SIGINT
    INIT_FAILED = 1  # the worker could not import the handler; reported to /runtime/init/error
    RUNTIME_API_GONE = 2  # the Runtime API stayed unreachable for the whole retry budget
    CONFIG_ERROR = 3  # a setting is invalid; the message names the variable
