"""The worker's per-event runner in process: the direct path as before, and limits that hold behind HTTP too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lambda_supervisor.shared.protocol import FrameDecoder, InvokeMessage
from lambda_supervisor.worker.context import FunctionInfo
from lambda_supervisor.worker.invocation import Invoker

EVENTS = Path(__file__).parent / "events"


def _invoke(invoker: Invoker, event: bytes) -> tuple[dict[str, Any], bytes]:
    (frame,) = FrameDecoder().feed(invoker(InvokeMessage("req-1", 2**45), event))
    return frame.header, frame.payload


def test_the_direct_path_is_unchanged() -> None:
    def handler(event: Any, context: Any) -> Any:
        return {"event": event, "source": context.event_source}

    invoker = Invoker(handler, FunctionInfo("f", "$LATEST", 128, "", ""), 6 * 1024 * 1024)
    header, payload = _invoke(invoker, b'{"a": 1}')
    assert header == {"type": "result", "request_id": "req-1"}
    assert json.loads(payload) == {"event": {"a": 1}, "source": "direct"}
    header, payload = _invoke(invoker, b"")
    assert json.loads(payload) == {"event": {}, "source": "direct"}


def test_an_oversized_proxy_response_is_still_refused() -> None:
    def handler(event: Any, context: Any) -> Any:
        return "x" * 2000

    invoker = Invoker(handler, FunctionInfo("f", "$LATEST", 128, "", ""), 1000)
    header, payload = _invoke(invoker, (EVENTS / "apigateway-rest.json").read_bytes())
    assert header["type"] == "error" and header["error_type"] == "Runtime.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in json.loads(payload)["errorMessage"]


def test_a_decorated_async_handler_and_a_sync_wrapper_returning_a_coroutine() -> None:
    from lambda_supervisor.worker.registration import HandlerOptions, lambda_handler

    @lambda_handler(decode_base64=True)
    async def decorated(event: Any, context: Any) -> Any:
        return {"source": context.event_source}

    def wrapper(event: Any, context: Any) -> Any:
        return decorated(event, context)

    function = FunctionInfo("f", "$LATEST", 128, "", "")
    http_event = (EVENTS / "function-url.json").read_bytes()
    for handler in (decorated, wrapper):
        invoker = Invoker(handler, function, 6 * 1024 * 1024, HandlerOptions(http=True))
        header, payload = _invoke(invoker, http_event)
        assert header["type"] == "result", payload
        assert json.loads(json.loads(payload)["body"]) == {"source": "function-url"}
        assert json.loads(_invoke(invoker, b"{}")[1]) == {"source": "direct"}
