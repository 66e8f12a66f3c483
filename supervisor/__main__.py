"""``python -m lambda_supervisor.supervisor``: the same as the ``lambda-supervisor`` command."""

from lambda_supervisor.supervisor.import_path import keep_user_code_off_the_path

keep_user_code_off_the_path()  # before anything imports a dependency the task root could shadow

import os  # noqa: E402
import sys  # noqa: E402

from lambda_supervisor.supervisor import early_worker  # noqa: E402

early_worker.start(sys.argv[1:], os.environ)  # the first worker starts now, while the rest is imported

from lambda_supervisor.supervisor.cli import main  # noqa: E402

raise SystemExit(main())
