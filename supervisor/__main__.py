"""``python -m lambda_supervisor.supervisor``: the same as the ``lambda-supervisor`` command."""

import gc
import sys

gc.disable()  # no collection while the modules load (~2 ms of a cold start); cli.py turns it back on
startup_path = list(sys.path)  # as the interpreter set it: a worker forked from here gets it back

from lambda_supervisor.supervisor.import_path import keep_user_code_off_the_path  # noqa: E402

keep_user_code_off_the_path()  # before anything imports a dependency the task root could shadow

import os  # noqa: E402

from lambda_supervisor.supervisor import early_worker  # noqa: E402

# The first worker starts now, while the rest is imported; in the child forked without exec, it runs from here.
if early_worker.start(sys.argv[1:], os.environ, startup_path):
    early_worker.become_worker()

from lambda_supervisor.supervisor.cli import main  # noqa: E402

raise SystemExit(main())
