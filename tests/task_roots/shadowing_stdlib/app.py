"""Uses what the task root's modules are named after, through the runtime: each must be the standard library's."""

import logging
import signal
import traceback

from lambda_supervisor.worker.http import http_response

logging.getLogger().warning("init warning")


def handler(event, context):
    if event.get("fail"):
        raise ValueError("as asked")
    if event.get("decimal"):  # the first result that is not plain data: simplejson is loaded now
        from decimal import Decimal

        return {"price": Decimal("1.10")}
    return {"logging": logging.__file__, "traceback": traceback.__file__, "signal": signal.__file__,
            "response": http_response({"ok": True}).status_code}
