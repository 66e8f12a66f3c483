"""Imports logging and traceback only in the handler, after init."""


def handler(event, context):
    import logging
    import traceback

    logging.getLogger("late").warning("late warning")
    return {"print_exception": traceback.print_exception.__module__,
            "root_handlers": [type(handler).__name__ for handler in logging.getLogger().handlers]}
