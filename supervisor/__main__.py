"""``python -m lambda_supervisor.supervisor``: the same as the ``lambda-supervisor`` command."""

from lambda_supervisor.supervisor.import_path import keep_user_code_off_the_path

keep_user_code_off_the_path()  # before anything imports a dependency the task root could shadow

from lambda_supervisor.supervisor.cli import main  # noqa: E402

raise SystemExit(main())
