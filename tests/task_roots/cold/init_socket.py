"""trivial.py's function, whose init also leaves a socket open (a listening loopback one here), as a database
connection opened at import would (a fork of this process would share it)."""

import socket

from trivial import handler  # noqa: F401

LISTENER = socket.create_server(("127.0.0.1", 0))
