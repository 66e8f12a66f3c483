"""Decode the base64 request bodies HTTP sources send, so handlers read ``event["body"]`` directly.

API Gateway, function URLs and ALBs base64-encode bodies they consider binary (and function URLs often any body)
and set ``isBase64Encoded``. With ``LAMBDA_SUPERVISOR_DECODE_BASE64`` on (by default, when HTTP shaping is on) the
handler instead sees the decoded body: ``str`` when it is UTF-8, ``bytes`` otherwise, and ``isBase64Encoded`` false.
Off (the default), the handler sees exactly what Lambda sends, as under awslambdaric.
"""

from __future__ import annotations

import base64
import binascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def decode_base64_body(event: dict[str, Any]) -> None:
    """Decode ``event["body"]`` in place when the event says it is base64; leave it alone when it is not valid
    base64 (the handler then sees exactly what the source sent, flag included)."""
    body = event.get("body")
    if event.get("isBase64Encoded") is not True or not isinstance(body, str):
        return
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return
    try:
        event["body"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        event["body"] = raw
    event["isBase64Encoded"] = False
