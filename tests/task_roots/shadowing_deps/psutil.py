"""A user module named like one of the runtime's dependencies; importing it is a bug in the runtime."""

raise ImportError("the user's psutil.py was imported instead of the runtime's own")
