"""What the supervisor computes without a module it used to import for it: a ``struct timeval`` without ``struct``,
RLIMIT_NICE without ``resource``, signal names without ``signal.py``, fd passing without socket.py (each one
module less to import and hold), and settings checked without compiling a regular expression on the way to the
first response."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import struct
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lambda_supervisor.shared.signal_names import signal_name
from lambda_supervisor.supervisor.config import _namespace, _runtime_api
from lambda_supervisor.supervisor.http_connection import _timeval
from lambda_supervisor.supervisor.priority import _nice_limit
from lambda_supervisor.supervisor.respawn import _send_fds


@pytest.mark.parametrize("seconds", [0.0, 1e-7, 0.000_001, 0.5, 3.0, 30.0, 900.25, 86_400.000_001])
def test_a_timeval_is_what_struct_packs(seconds: float) -> None:
    microseconds = max(round(seconds * 1_000_000), 1)
    assert _timeval(seconds) == struct.pack("@ll", microseconds // 1_000_000, microseconds % 1_000_000)


@pytest.mark.parametrize("limit", [0, 19, 20, 40, resource.RLIM_INFINITY])
def test_the_nice_limit_is_resources(limit: int) -> None:
    """Read in a child given that soft limit, where the hard one (or privilege) allows it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            try:
                resource.setrlimit(resource.RLIMIT_NICE, (limit, limit))
                os.write(write, str(_nice_limit()).encode())
            except (OSError, ValueError):
                os.write(write, b"cannot")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    seen = os.read(read, 100)
    os.close(read)
    if seen == b"cannot":
        pytest.skip("this process may not set RLIMIT_NICE so")
    assert seen == str(None if limit == resource.RLIM_INFINITY else limit).encode()
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    assert _nice_limit() == (None if soft == resource.RLIM_INFINITY else soft)


def test_fds_sent_arrive_as_socket_recv_fds_reads_them() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    read, write = os.pipe()
    try:
        _send_fds(ours, b"fork", [read, write])  # type: ignore[arg-type]
        message, fds, _, _ = socket.recv_fds(theirs, 100, 2)
        assert message == b"fork" and len(fds) == 2
        os.write(fds[1], b"x")
        assert os.read(read, 1) == b"x"
        for fd in fds:
            os.close(fd)
    finally:
        for fd in (read, write):
            os.close(fd)
        ours.close()
        theirs.close()


RUNTIME_API_PATTERN = r"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})"
NAMESPACE_PATTERN = r"[A-Za-z0-9._/#:\- ]{1,255}"
ADDRESS_PIECES = st.sampled_from(["a", "Z", "9", "0", ".", "-", ":", "[", "]", "f", "G", " ", "é", "\u0661", "_",
                                  "65535", "65536", "00080", "127.0.0.1", "[::1]", "localhost"])


def _regex_runtime_api(text: str) -> bool:
    match = re.fullmatch(RUNTIME_API_PATTERN, text)
    return match is not None and 0 < int(match.group(1)) < 65536


def _accepts(parse: Callable[[str], str], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


@given(st.lists(ADDRESS_PIECES, max_size=8).map("".join) | st.text(max_size=12))
@example("127.0.0.1:9001")
@example("[::1]:80")
@example("host:0")
@example("host:65536")
@example("a:b:80")
@example("[]:80")
@example(":80")
@example("host:\u0661\u0662")
def test_the_runtime_api_address_is_checked_as_the_regex_did(text: str) -> None:
    assert _accepts(_runtime_api, text) == _regex_runtime_api(text)


@given(st.lists(ADDRESS_PIECES, max_size=8).map("".join) | st.text(max_size=12))
@example("LambdaSupervisor")
@example(" ")
@example("a" * 255)
@example("a" * 256)
def test_the_metrics_namespace_is_checked_as_the_regex_did(text: str) -> None:
    expected = re.fullmatch(NAMESPACE_PATTERN, text) is not None and bool(text.strip())
    assert _accepts(_namespace, text) == expected


@pytest.mark.parametrize("number", range(0, 70))
def test_a_signal_is_named_as_signal_signals_names_it(number: int) -> None:
    try:
        expected: str | None = signal.Signals(number).name
    except ValueError:
        expected = None
    assert signal_name(number) == expected
