# typeshed has no stub for _signal, the C half of signal.py: the supervisor imports it directly (signal.py builds enums
# at import, at every start; see shared/signal_names.py). Its functions and constants are signal.py's, minus the enums.
from signal import *  # noqa: F403
