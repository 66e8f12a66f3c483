"""A local emulator of the Lambda Runtime API, used by ``lambda-supervisor serve`` and by the tests."""

from .faults import Delay, Fault, Injection, LostAnswer, Reset, Status
from .records import InvocationRecord, PostedError
from .server import RuntimeApiEmulator

__all__ = ["Delay", "Fault", "Injection", "InvocationRecord", "LostAnswer", "PostedError", "Reset",
           "RuntimeApiEmulator", "Status"]
