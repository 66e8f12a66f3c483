"""Handlers behind HTTP and other event sources, for the event-source tests. Only the worker imports this file."""

import asyncio

from lambda_supervisor.worker.http import HTTPError, http_response
from lambda_supervisor.worker.registration import lambda_handler
from lambda_supervisor.worker.serialisers import identity


def describe(event, context):
    """What the handler saw: the source, and the body as it arrived (bytes shown as hex)."""
    body = event.get("body") if isinstance(event, dict) else None
    return {
        "source": context.event_source,
        "body": body.hex() if isinstance(body, bytes) else body,
        "body_type": type(body).__name__,
        "isBase64Encoded": event.get("isBase64Encoded") if isinstance(event, dict) else None,
    }


def text(event, context):
    return "hello, world"


def binary(event, context):
    return b"\x89PNG\r\n\x1a\n"


def nothing(event, context):
    return None


def explicit(event, context):
    return http_response({"created": "42"}, status_code=201, headers={"Location": "/orders/42"})


def explicit_html(event, context):
    return http_response("<h1>hi</h1>", content_type="text/html")


def proxy(event, context):
    return {"statusCode": 302, "headers": {"Location": "https://example.com/"}, "body": ""}


def not_found(event, context):
    raise HTTPError(404, "no such order")


def boom(event, context):
    raise RuntimeError("database password is hunter2")


def unencodable(event, context):
    return {"values": {1, 2, 3}}


async def async_describe(event, context):
    await asyncio.sleep(0)
    return {"source": context.event_source, "async": True}


_state = {}


async def _wait_for_release(event):
    await event.wait()
    return "released"


async def warm_loop(event, context):
    """Call 1 leaves a task waiting on an asyncio.Event and binds a lock to the loop; call 2 uses both: that only
    works when both calls run on the same, still open, event loop."""
    if "lock" not in _state:
        _state["lock"] = asyncio.Lock()
        _state["release"] = asyncio.Event()
        _state["task"] = asyncio.create_task(_wait_for_release(_state["release"]))
        _state["loop"] = id(asyncio.get_running_loop())
    lock = _state["lock"]
    async with lock:  # contend for the lock, which binds it to the running loop
        waiter = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0)
    await waiter
    lock.release()
    if event.get("release"):
        _state["release"].set()
        return {"task": await _state["task"], "same_loop": _state["loop"] == id(asyncio.get_running_loop())}
    return {"task_pending": not _state["task"].done()}


@lambda_handler(deserialiser=identity, serialiser=identity)
def raw(body, context):
    """Raw string in, raw string out."""
    return f"{type(body).__name__}:{body[::-1]}"


@lambda_handler(serialiser=lambda value: f"<{value}>")
def decorated_serialiser(event, context):
    return event.get("word", "none")


@lambda_handler(decode_base64=False)
def keep_base64(event, context):
    return {"body": event.get("body"), "isBase64Encoded": event.get("isBase64Encoded")}


def returns_int_to_identity(event, context):
    return 42


@lambda_handler(http=True)
def shaped(event, context):
    return describe(event, context)


def authorize(event, context):
    """A Lambda authorizer: a simple response for HTTP API payload 2.0, an IAM policy otherwise."""
    if event.get("authorizationToken") == "deny":
        raise Exception("Unauthorized")
    if "routeArn" in event:
        return {"isAuthorized": True, "context": {"source": context.event_source}}
    return {
        "principalId": "user-1",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]},
        "context": {"source": context.event_source},
    }
