"""``python -m lambda_supervisor.supervisor``: the same as the ``lambda-supervisor`` command."""

from lambda_supervisor.supervisor.cli import main

raise SystemExit(main())
