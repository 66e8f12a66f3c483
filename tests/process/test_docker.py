"""docker/: the Dockerfile's instructions check out against the repository, and docker/bootstrap runs exactly as the
image would run it (no Docker engine needed): on Lambda against a Runtime API, and locally as the invoke endpoint."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import free_port, post_when_listening
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APP = DOCKER / "app"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
BASE_IMAGES = ("public.ecr.aws/lambda/python:3.12", "public.ecr.aws/lambda/provided:al2023")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction: comments dropped, backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword, arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def copy_sources_and_destination(arguments: str) -> tuple[list[str], str]:
    parts = [part for part in arguments.split() if not part.startswith("--")]
    assert len(parts) >= 2, f"COPY needs a source and a destination: {arguments}"
    return parts[:-1], parts[-1]


def test_the_dockerfile_parses_and_references_files_that_exist() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    for keyword, _ in instructions:
        assert keyword in INSTRUCTIONS, f"unknown instruction {keyword}"
    assert instructions[0][0] == "FROM" and instructions[0][1] in BASE_IMAGES
    copied: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword in ("COPY", "ADD"):
            sources, destination = copy_sources_and_destination(arguments)
            for source in sources:
                assert not source.startswith(("/", "..")), f"{source} must be inside the build context"
                assert (ROOT / source).exists(), f"{keyword} source {source} is not in the repository"
                copied[source.rstrip("/")] = destination
    exec_forms = {keyword: json.loads(arguments) for keyword, arguments in instructions
                  if keyword in ("ENTRYPOINT", "CMD")}
    for keyword, value in exec_forms.items():
        assert isinstance(value, list) and value and all(isinstance(part, str) for part in value), keyword
    # The entry point is our bootstrap, copied in and made executable, and CMD names a handler the app has.
    [entrypoint] = exec_forms["ENTRYPOINT"]
    assert copied["docker/bootstrap"] == entrypoint
    assert any(keyword == "RUN" and f"chmod 0755 {entrypoint}" in arguments for keyword, arguments in instructions)
    assert os.access(DOCKER / "bootstrap", os.X_OK)
    [handler] = exec_forms["CMD"]
    module, function = handler.rsplit(".", 1)
    assert copied["docker/app"] == "${LAMBDA_TASK_ROOT}/"
    tree = ast.parse((APP / f"{module}.py").read_text())
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    # The package is installed from the directories pyproject.toml maps.
    pyproject = (ROOT / "pyproject.toml").read_text()
    for folder in re.findall(r'^"lambda_supervisor\.\w+" = "(\w+)"$', pyproject, re.MULTILINE):
        assert folder in copied, f"the image must copy {folder}/"


def lambda_environment(**extra: str) -> dict[str, str]:
    """What Lambda gives a container image's process (no variables from this machine but a PATH to our Python)."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(APP),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "sample",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/sample",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        **extra,
    }


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(function_timeout_s=10.0, function_name="sample") as running:
        yield running


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.mark.parametrize("handler_from", ["argument", "_HANDLER"])
def test_the_bootstrap_runs_the_function_as_lambda_starts_the_image(
    emulator: RuntimeApiEmulator, tmp_path: Path, handler_from: str
) -> None:
    extra = {"AWS_LAMBDA_RUNTIME_API": emulator.address}
    arguments = ["app.handler"]
    if handler_from == "_HANDLER":
        extra["_HANDLER"], arguments = "app.handler", []
    log_path = tmp_path / "bootstrap.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(DOCKER / "bootstrap"), *arguments], cwd=APP, env=lambda_environment(**extra),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            emulator.wait_next_polled(1, timeout=60)
            first = emulator.invoke({"action": "ok"}, wait=30).json()
            assert first["action"] == "ok" and first["pid"] != process.pid
            crash = emulator.invoke({"action": "crash"}, wait=30)
            assert crash.error.error_type == "Runtime.ExitError"
            again = emulator.invoke({}, wait=30).json()
            assert again["pid"] != first["pid"], "the crashed worker was replaced"
        finally:
            assert stop(process) == 0, "exec'd into the supervisor: SIGTERM ends it cleanly"
    text = log_path.read_bytes().decode()
    assert re.search(r"^\[INFO\]\t[0-9T:.-]+Z\t[0-9a-f-]+\thandling ok in worker \d+\n", text, re.MULTILINE)
    assert "worker replaced: reason=crash" in text and "REPORT RequestId:" not in text, "REPORT lines are opt-in"


def test_the_bootstrap_serves_the_invoke_endpoint_when_run_locally(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "local.log").open("wb")
    process = subprocess.Popen([str(DOCKER / "bootstrap"), "app.handler"], cwd=APP,
                               env=lambda_environment(LAMBDA_SUPERVISOR_LOCAL_PORT=str(port)),
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"


    try:
        response = post_when_listening(url, b'{"action": "raise"}')
        assert response.headers.get("X-Amz-Function-Error") == "Unhandled"
        assert response.json()["errorType"] == "ValueError"
        assert requests.post(url, data=b"{}", timeout=30).json()["action"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        log.close()
