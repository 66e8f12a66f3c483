"""``python -m lambda_supervisor.worker``: the worker process, started only by the supervisor."""

from lambda_supervisor.worker.main import main

raise SystemExit(main())
