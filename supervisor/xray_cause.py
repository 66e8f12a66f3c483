"""The ``Lambda-Runtime-Function-XRay-Error-Cause`` header of an error post, as awslambdaric sends it, made safe.

The worker sends an X-Ray cause with its errors; it is untrusted, so it is rebuilt field by field
(:meth:`XRayCause.from_data`), and an error without a usable one (or of the supervisor's own making: a crash, a
timeout) gets a cause with its type and message and no stack. The value is ASCII JSON without CR or LF and at most
``MAX_XRAY_CAUSE_BYTES`` (32 KiB): strings are cut to fixed lengths, then the oldest frames dropped until it fits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lambda_supervisor.shared.xray import MAX_XRAY_CAUSE_BYTES, XRayCause

TYPE_CHECKING = False  # typing's own costs ~4 ms and ~0.5 MB at each cold start; mypy reads it as typing's
if TYPE_CHECKING:
    from typing import Any

XRAY_ERROR_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"


def _working_directory() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


def xray_error_cause(candidate: object, error: Mapping[str, Any]) -> str | None:
    """The header's value for ``error``: from the worker's ``candidate`` if it is a valid cause, else from the
    error's type and message. None (no header) only if the value somehow is not printable ASCII within the bound."""
    cause = XRayCause.from_data(candidate)
    if cause is None:
        cause = XRayCause(_working_directory(), str(error.get("errorType", "")), str(error.get("errorMessage", "")))
    value = cause.header_value(MAX_XRAY_CAUSE_BYTES)
    if len(value) > MAX_XRAY_CAUSE_BYTES or not (value.isascii() and value.isprintable()):
        return None
    return value
