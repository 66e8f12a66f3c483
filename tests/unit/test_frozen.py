"""The supervisor's value classes without dataclasses: frozen, compared and copied by their fields."""

from __future__ import annotations

import pytest

from lambda_supervisor.supervisor.frozen import FrozenError
from lambda_supervisor.supervisor.outcome import Failure, ReplacementReason, Response


def test_a_value_cannot_be_changed_after_it_is_built() -> None:
    response = Response(b"{}")
    with pytest.raises(FrozenError):
        response.body = b"other"  # type: ignore[misc]
    with pytest.raises(FrozenError):
        del response.fault  # type: ignore[misc]
    with pytest.raises(AttributeError):
        response.anything = 1  # type: ignore[attr-defined]
    assert response.body == b"{}"


def test_equality_hash_and_repr_are_over_the_fields() -> None:
    assert Response(b"{}") == Response(b"{}", "application/json")
    assert Response(b"{}") != Response(b"{}", fault=ReplacementReason.CRASH)
    assert hash(Response(b"x")) == hash(Response(b"x"))
    assert Response(b"{}") != Failure({"errorType": "E"})
    assert repr(Failure({"errorType": "E"}, blame="a")) == (
        "Failure(blame='a', delivered=True, error={'errorType': 'E'}, fault=None, never_sent=False, xray_cause=None)")


def test_replace_copies_with_changes_and_rejects_unknown_fields() -> None:
    failure = Failure({"errorType": "E"})
    changed = failure.replace(delivered=False, fault=ReplacementReason.STRAY_FRAME)
    assert (changed.delivered, changed.fault, changed.error) == (False, ReplacementReason.STRAY_FRAME, failure.error)
    assert failure.delivered is True
    with pytest.raises(TypeError):
        failure.replace(nonsense=1)
