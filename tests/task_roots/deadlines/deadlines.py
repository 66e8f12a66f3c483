"""Handlers for the deadline, shutdown and foreign-post tests. Only the worker imports this file."""

import json
import os
import time
import urllib.request

_SLOW_INIT_FLAG = os.environ.get("SLOW_INIT_FLAG")
if _SLOW_INIT_FLAG and os.path.exists(_SLOW_INIT_FLAG):  # init blocks, once the test has raised the flag
    with open(f"{_SLOW_INIT_FLAG}.{os.getpid()}.started", "w"):
        pass
    time.sleep(60)
_FAIL_INIT_FLAG = os.environ.get("FAIL_INIT_FLAG")
if _FAIL_INIT_FLAG and os.path.exists(_FAIL_INIT_FLAG):  # init fails, once the test has raised the flag
    raise RuntimeError("init fails on purpose")


def pid(event, context):
    return os.getpid()


def pid_or_crash(event, context):
    if event.get("crash"):
        os._exit(3)
    return os.getpid()


def spin(event, context):
    """A hang that burns CPU, competing with the supervisor for it."""
    while True:
        pass


def sleep(event, context):
    time.sleep(float(event.get("seconds", 0)))
    return os.getpid()


def post_own_response(event, context):
    """Answer our own request behind the supervisor's back, as user code that found the Runtime API could."""
    url = f"http://{event['runtime_api']}/2018-06-01/runtime/invocation/{context.aws_request_id}/response"
    request = urllib.request.Request(url, data=json.dumps({"forged": True}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        status = answer.status
    return {"handler_post_status": status, "pid": os.getpid()}


def soft_then_report(event, context):
    """Sleeps until the soft timeout interrupts it, which then propagates as the invocation's error."""
    time.sleep(60)


def dump_late(event, context):
    """A hang that cannot take the stack-dump signal at once (as a CPU-starved worker cannot): it holds SIGUSR2
    blocked until a moment after the supervisor's timeout fired, then takes it."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    unblock_at_ms = event["margin_ms"] - event["after_timer_ms"]
    while context.get_remaining_time_in_millis() > unblock_at_ms:
        time.sleep(0.001)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
    time.sleep(3600)
