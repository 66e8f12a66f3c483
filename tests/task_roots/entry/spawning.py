"""A handler that starts processes with multiprocessing (start method from the event) and says what the user's code
sees of the worker's own start: sys.argv[0] and the __main__ module."""

import multiprocessing
import os
import sys
import time


def square(number):
    return number * number


def handler(event, context):
    if "sleep" in event:  # busy in a handler, its pid announced first
        with open(event["pid_file"], "w") as pid_file:
            pid_file.write(str(os.getpid()))
        time.sleep(event["sleep"])
    with multiprocessing.get_context(event["method"]).Pool(2) as pool:
        squares = pool.map(square, [1, 2, 3])
    main = sys.modules["__main__"]
    return {"squares": squares, "argv0": sys.argv[0], "main_name": main.__name__,
            "main_file": getattr(main, "__file__", None)}
