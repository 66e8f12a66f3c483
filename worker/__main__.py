"""``python -m lambda_supervisor.worker``: the worker process, as the supervisor starts it with ``python -c``
(worker/start.py); kept for running a worker by hand."""

from lambda_supervisor.worker.start import start

start()
