"""layer/: the layer for Lambda's managed Python runtime, built by layer/build.sh and started as that runtime starts
it. Lambda's /var/runtime/bootstrap runs ``$AWS_LAMBDA_EXEC_WRAPPER /var/lang/bin/python3.X /var/runtime/bootstrap.py``
with _HANDLER, LAMBDA_TASK_ROOT and AWS_LAMBDA_RUNTIME_API set, from the task root; the wrapper must turn that into
our supervisor, using only what the layer brings."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import TASK_ROOTS
from lambda_supervisor.local.emulator.server import RuntimeApiEmulator

REPOSITORY = Path(__file__).resolve().parents[2]
LAYER = REPOSITORY / "layer"
# The "managed runtime's interpreter": the Python this venv was made from, which has none of our dependencies.
MANAGED_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

APP = '''
import os, signal, sys

def handler(event, context):
    if event.get("action") == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if event.get("action") == "other layer":
        import other_layer
        return other_layer.NAME
    return {"pid": os.getpid(), "worker_from": sys.modules["lambda_supervisor.worker"].__file__,
            "pythonpath": os.environ.get("PYTHONPATH", "")}
'''


@pytest.fixture(scope="module")
def built_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """layer/build.sh for this machine's platform and Python, unpacked as Lambda unpacks layers into /opt."""
    out = tmp_path_factory.mktemp("dist") / "layer.zip"
    arch = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    command = ["sh", str(LAYER / "build.sh"), "--python", PYTHON_VERSION, "--arch", arch, "--out", str(out)]
    build = subprocess.run(command, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    opt = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(out) as layer:
        for member in layer.infolist():  # extractall drops the mode bits; Lambda keeps them
            path = Path(layer.extract(member, opt))
            if member.external_attr >> 16:
                path.chmod(member.external_attr >> 16 & 0o777)
    return opt


def test_the_layer_carries_bytecode_for_its_python(built_layer: Path) -> None:
    """/opt is read-only on Lambda: a module without its .pyc in the layer is compiled again at every cold start."""
    tag = sys.implementation.cache_tag
    for module in ("supervisor/__main__.py", "worker/main.py", "shared/protocol.py"):
        source = built_layer / "python" / "lambda_supervisor" / module
        assert (source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc").is_file(), module
    assert list((built_layer / "python" / "simplejson" / "__pycache__").glob(f"*.{tag}.pyc")), "dependencies too"


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    """The function's code, next to modules named like the supervisor's dependencies that raise on import."""
    root = tmp_path / "task"
    root.mkdir()
    for shadow in (TASK_ROOTS / "shadowing_deps").glob("*.py"):
        if shadow.name != "app.py":
            shutil.copy(shadow, root)
    (root / "app.py").write_text(APP)
    return root


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(function_timeout_s=10.0, function_name="layered") as running:
        yield running


def managed_runtime_environment(emulator: RuntimeApiEmulator, task_root: Path, opt: Path, var_runtime: Path
                                ) -> dict[str, str]:
    """What the managed runtime's bootstrap hands its wrapper: Lambda's variables (no PYTHONPATH: the runtime's
    bootstrap.py sets up sys.path itself), and nothing from this test's virtualenv."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(var_runtime),
        "AWS_LAMBDA_RUNTIME_API": emulator.address,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{PYTHON_VERSION}",
        "AWS_LAMBDA_EXEC_WRAPPER": str(opt / "lambda-supervisor"),
        "AWS_LAMBDA_FUNCTION_NAME": "layered",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    }


@pytest.mark.parametrize("pythonpath", ["unset, as on Lambda", "set by the function"])
def test_the_layer_runs_the_supervisor_in_place_of_the_managed_runtime(
        built_layer: Path, task_root: Path, emulator: RuntimeApiEmulator, tmp_path: Path, pythonpath: str) -> None:
    layer_site_packages = built_layer / "python" / "lib" / MANAGED_PYTHON.name / "site-packages"
    layer_site_packages.mkdir(parents=True, exist_ok=True)  # where another layer may put its packages
    (layer_site_packages / "other_layer.py").write_text("NAME = 'from another layer'\n")
    var_runtime = tmp_path / "var-runtime"
    var_runtime.mkdir()
    marker = tmp_path / "bootstrap.py-ran"
    (var_runtime / "bootstrap.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n")
    assert subprocess.run([str(MANAGED_PYTHON), "-c", "import psutil"], capture_output=True).returncode != 0, \
        "the stand-in for the managed runtime's Python must not have our dependencies"
    argv = [str(built_layer / "lambda-supervisor"), str(MANAGED_PYTHON), str(var_runtime / "bootstrap.py")]
    env = managed_runtime_environment(emulator, task_root, built_layer, var_runtime)
    layer_python = str(built_layer / "python")
    if pythonpath == "set by the function":  # the runtime's bootstrap.py would only put the task root before it
        env["PYTHONPATH"] = os.pathsep.join([str(task_root), str(tmp_path / "elsewhere")])
        expected_path = os.pathsep.join([layer_python, env["PYTHONPATH"]])
    else:  # what the runtime's bootstrap.py puts on sys.path, and PYTHONPATH=LAMBDA_RUNTIME_DIR for subprocesses
        expected_path = os.pathsep.join([str(layer_site_packages), layer_python, str(var_runtime)])
    log_path = tmp_path / "runtime.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=task_root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
        try:
            emulator.wait_next_polled(1, timeout=60)
            command = psutil.Process(process.pid).cmdline()
            assert command == [str(MANAGED_PYTHON), "-P", "-u", "-m", "lambda_supervisor.supervisor", "run"], command
            first = emulator.invoke({}, wait=30).json()
            assert first["worker_from"].startswith(layer_python), first
            assert first["pythonpath"] == expected_path
            if pythonpath != "set by the function":
                assert emulator.invoke({"action": "other layer"}, wait=30).json() == "from another layer"
            crash = emulator.invoke({"action": "crash"}, wait=30)
            assert crash.error.error_type == "Runtime.ExitError", crash.describe()
            again = emulator.invoke({}, wait=30).json()
            assert again["pid"] != first["pid"], "the supervisor replaced the crashed worker"
        finally:
            process.send_signal(signal.SIGTERM)
            status = process.wait(30)
    text = log_path.read_text(errors="replace")
    assert status == 0, text
    assert not marker.exists(), "the managed runtime's own bootstrap.py must not run"
    assert "instead of the runtime's own" not in text, text


def test_the_layer_leaves_out_what_only_the_local_tools_need(built_layer: Path) -> None:
    """requests and loguru are the [local] extra's (the emulator, serve, invoke, demo): a function's layer does not
    carry them. (The test above runs the layer's supervisor through a crash and a respawn without them.)"""
    packages = {path.name.lower() for path in (built_layer / "python").iterdir()}
    for local_only in ("requests", "loguru"):
        assert not any(name == local_only or name.startswith(local_only + "-") for name in packages), packages
    assert "psutil" in packages, "the layer's own dependencies are there"


def test_the_wrapper_without_a_command_line_says_what_is_wrong(tmp_path: Path) -> None:
    result = subprocess.run([str(LAYER / "lambda-supervisor")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 126 and "expected the runtime's command line" in result.stderr


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--arch", "sparc", "--arch must be x86_64 or arm64"),
    ("--python", "3.10", "--python must be 3.11 or later"),
])
def test_the_build_script_refuses_a_platform_the_layer_cannot_serve(option: str, value: str, message: str) -> None:
    result = subprocess.run(["sh", str(LAYER / "build.sh"), option, value], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr
