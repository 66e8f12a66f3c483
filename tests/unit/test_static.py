"""The project's own checks, run as tests so that CI enforces them: ruff, mypy --strict, and a README that
documents exactly the settings the code reads and the commands CI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lambda_supervisor.supervisor.config import SETTINGS, settings_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """mypy cannot follow the editable install's import hook, so it checks a symlinked view of the package,
    assembled from the top-level folders exactly as pyproject.toml maps them."""
    package = tmp_path / "lambda_supervisor"
    package.mkdir()
    for folder in ("supervisor", "worker", "shared", "local"):
        (package / folder).symlink_to(ROOT / folder)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
         str(tmp_path / "cache"), "-p", "lambda_supervisor"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MYPYPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_carries_the_settings_table_generated_from_the_code() -> None:
    assert settings_table() in README
    for setting in SETTINGS:
        assert f"`{setting.variable}`" in README


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- ci:install -->" in README and "<!-- ci:test -->" in README
    assert "readme_command install" in ci and "readme_command test" in ci
    result = subprocess.run(["bash", "-c", f"source <(sed -n '/^readme_command()/,/^}}/p' {ROOT / '.ci/run'}); "
                             f"cd {ROOT} && readme_command test"], capture_output=True, text=True)
    assert result.stdout.strip() == ".venv/bin/python -m pytest", result.stdout + result.stderr
