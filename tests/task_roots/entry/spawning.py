"""A handler that starts processes with multiprocessing (start method from the event) and says what the user's code
sees of the worker's own start: sys.argv[0] and the __main__ module."""

import multiprocessing
import sys


def square(number):
    return number * number


def handler(event, context):
    with multiprocessing.get_context(event["method"]).Pool(2) as pool:
        squares = pool.map(square, [1, 2, 3])
    main = sys.modules["__main__"]
    return {"squares": squares, "argv0": sys.argv[0], "main_name": main.__name__,
            "main_file": getattr(main, "__file__", None)}
