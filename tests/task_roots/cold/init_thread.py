"""trivial.py's function, whose init also starts a thread, as a metrics flusher started at import would (a fork of
this process would not have it)."""

import threading
import time

from trivial import handler  # noqa: F401

threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="flusher").start()
