"""supervisor/short_slice.py on a kernel without custom slices (before 6.12), which reports a slice of 0: shorten
declines without a system call that would change the thread (the real kernel's case is tests/process)."""

from __future__ import annotations

import pytest

from lambda_supervisor.supervisor import short_slice


def test_a_kernel_without_custom_slices_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's answer to sched_getattr, stubbed: SCHED_OTHER at nice 0 with no slice (its buffer left zeroed)."""
    calls: list[int] = []
    monkeypatch.setattr(short_slice, "_syscall", lambda number, *arguments: calls.append(number))
    assert short_slice._SYSCALLS is not None
    assert short_slice.shorten() is False
    assert calls == [short_slice._SYSCALLS[1]], "sched_getattr only: no sched_setattr"
