"""A user module named like one the worker imports only when needed: it must not replace it."""

raise ImportError("the task root's simplejson.py was imported instead of the one the worker's encoder needs")
