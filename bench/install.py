"""The interpreter every runtime under test runs on: a regular install, as on Lambda, for all of them alike.

The development virtualenv holds lambda-supervisor as an editable install, whose ``.pth`` finder every interpreter
started from it imports at start-up (pathlib, re, urllib.parse ...: about 12 ms on this machine). awslambdaric
would pay it once and lambda-supervisor twice (supervisor, then worker), while neither pays it in a real image or
layer. So the runtimes run on a small virtualenv of their own (``bench/results/venv``) where the package is found
as a plain directory, as a regular install puts it, and the development virtualenv's site-packages (awslambdaric,
httptools, simplejson ...) is one more plain path entry, whose ``.pth`` files are not run.

And like pip, which compiled awslambdaric's modules when it installed them, the package's modules are compiled
before the runs: with ``PYTHONDONTWRITEBYTECODE`` set (as on this project's machines) an editable install's
interpreters would otherwise compile every module of ours from source at every start.
"""

from __future__ import annotations

import compileall
import functools
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
VENV = REPOSITORY / "bench" / "results" / "venv"
#: lambda_supervisor's subpackages, by the folder that holds each in the repository (see pyproject.toml).
PACKAGE_DIRS = {"supervisor": "supervisor", "worker": "worker", "shared": "shared"}


def _site_packages(venv: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return venv / relative


def _build(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)],  # type: ignore[attr-defined]
                       check=True)
    site_packages = _site_packages(venv)
    package = site_packages / "lambda_supervisor"
    package.mkdir(parents=True, exist_ok=True)
    for name, folder in PACKAGE_DIRS.items():
        link = package / name
        if not link.is_symlink():
            link.symlink_to(REPOSITORY / folder, target_is_directory=True)
    # A path line, not an import line: the development site-packages is searched, its .pth files are not run.
    (site_packages / "dev-site-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for folder in PACKAGE_DIRS.values():  # into each folder's __pycache__ (ignored by git), as pip compiles
        if not compileall.compile_dir(REPOSITORY / folder, quiet=1):
            raise RuntimeError(f"could not compile {REPOSITORY / folder}")


@functools.cache
def runtime_python() -> str:
    """The interpreter to start every runtime under test with (built on first use)."""
    _build(VENV)
    python = VENV / "bin" / "python"
    found = subprocess.run([str(python), "-c", "import lambda_supervisor.supervisor as s, awslambdaric; "
                            "print(s.__file__)"], capture_output=True, text=True, check=True).stdout.strip()
    if os.path.realpath(found) != str(REPOSITORY / PACKAGE_DIRS["supervisor"] / "__init__.py"):
        raise RuntimeError(f"the bench interpreter imports lambda_supervisor from {found}, not from {REPOSITORY}")
    return str(python)
