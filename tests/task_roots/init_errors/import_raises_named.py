"""Fails its import with an exception class whose name holds Cyrillic letters and a CR LF."""

raise type("Ошибка\r\nX-Injected: yes", (Exception,), {})("init went wrong")
