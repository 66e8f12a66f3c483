"""Making user-controlled text safe to put in an HTTP header or a log line.

The worker runs untrusted code, and some of what it says ends up in places with a syntax of their own: an
exception's class name becomes the ``Lambda-Runtime-Function-Error-Type`` header, and request ids, error types and
messages become fields of the supervisor's log lines. A carriage return or line feed there would inject a header or
forge a log line; a non-ASCII character cannot be sent in a header at all. So such characters are written as
backslash escapes (``\\n``, ``\\x1b``, ``\\u0416``): the value stays readable and distinct, and a name that was
already safe is left exactly as it was. The JSON bodies keep the real text.
"""

from __future__ import annotations

import re

#: What a header value may hold: printable ASCII (space to tilde), so no CR, LF or other control character. The
#: patterns are compiled on first use (``re``'s cache), not at import: text that ``str.isprintable`` accepts never
#: needs them, and the worker's start does not pay for their compilation.
_NOT_HEADER_SAFE = r"[^\x20-\x7e]"
#: What may not appear raw in a log line: control characters (C0, DEL, C1) and Unicode's line separators.
_NOT_LOG_SAFE = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Longest error type sent as a header; the body keeps the whole name.
MAX_HEADER_VALUE_CHARS = 256
#: The error type header when the error has none (Lambda's own default).
UNNAMED_ERROR_TYPE = "Unhandled"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def header_value(text: str, limit: int = MAX_HEADER_VALUE_CHARS) -> str:
    """``text`` as a header value: printable ASCII only, anything else escaped, at most ``limit`` characters."""
    if text.isascii() and text.isprintable():  # exactly space to tilde
        return text[:limit]
    return re.sub(_NOT_HEADER_SAFE, _escape, text)[:limit]


def error_type_header(error_type: object) -> str:
    """The ``Lambda-Runtime-Function-Error-Type`` value for an error object's ``errorType``."""
    text = error_type if isinstance(error_type, str) else ""
    return header_value(text) or UNNAMED_ERROR_TYPE


def log_safe(text: str) -> str:
    """``text`` as part of one log line: control characters and line separators escaped, so it cannot end the line
    or start a forged one. Printable non-ASCII text is kept as it is."""
    if text.isprintable():  # no control character (Cc) and no line separator (Zl, Zp)
        return text
    return re.sub(_NOT_LOG_SAFE, _escape, text)


def is_header_safe(text: str) -> bool:
    """Whether ``text`` can go on an HTTP request line or header as it is."""
    return text.isascii() and text.isprintable()
