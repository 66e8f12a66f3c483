"""A user module named like a standard one the worker imports only when needed: it must not replace it."""

raise ImportError("the task root's signal.py was imported instead of the standard library's")
