"""Imports logging.handlers (and so logging) and traceback during init and uses them at once: they must already be
set up as the runtime sets them up, though the worker did not import them before this module."""

import sys

WAS_IMPORTED = {name: name in sys.modules for name in ("logging", "traceback")}

import logging.handlers  # noqa: E402
import traceback  # noqa: E402

logging.warning("init warning")  # with no handler on the root logger, this would call basicConfig


def handler(event, context):
    logging.getLogger("app").error("handler error %s", 7)
    return {"was_imported": WAS_IMPORTED, "print_exception": traceback.print_exception.__module__,
            "root_handlers": [type(handler).__name__ for handler in logging.getLogger().handlers]}
