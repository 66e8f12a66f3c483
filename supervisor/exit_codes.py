"""Why the supervisor process ended, as its exit status (Lambda restarts the sandbox on any non-zero exit)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # shut down on SIGTERM / SIGINT
    INIT_FAILED = 1  # the worker could not import the handler; reported to /runtime/init/error
    RUNTIME_API_GONE = 2  # the Runtime API stayed unreachable for the whole retry budget
    CONFIG_ERROR = 3  # a setting is invalid; the message names the variable
