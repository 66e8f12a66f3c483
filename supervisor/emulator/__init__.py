"""A local emulator of the Lambda Runtime API, used by ``lambda-supervisor serve`` and by the tests."""

from .records import InvocationRecord, PostedError
from .server import RuntimeApiEmulator

__all__ = ["InvocationRecord", "PostedError", "RuntimeApiEmulator"]
