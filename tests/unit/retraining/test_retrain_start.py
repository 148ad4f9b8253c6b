"""A trigger's run: its execution name fits Step Functions' rules and is the trigger's alone; its
input is the detail's alone, with the waiting rule's moment."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscore.retraining.start import (
    NAME_LIMIT,
    InvalidTriggerError,
    execution_name,
    ready_at,
    retrain_run,
    run_prefix,
)

ALLOWED = re.compile(r"[0-9A-Za-z_-]{1,80}")


@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300))
def test_names_fit_the_rules_and_differ_for_different_triggers(one: str, other: str) -> None:
    assert ALLOWED.fullmatch(execution_name(one))
    assert len(execution_name(one)) <= NAME_LIMIT
    assert execution_name(one) == execution_name(one)
    if one != other:
        assert execution_name(one) != execution_name(other)


def test_a_long_trigger_id_keeps_its_readable_start() -> None:
    trigger = "cardfraud-gbdt-d0de890fd6/20260303T1200Z--20260304T1200Z"
    assert execution_name(trigger).startswith("cardfraud-gbdt-d0de890fd6-20260303T1200Z")


def test_the_input_is_the_details_alone_with_the_waiting_rules_moment() -> None:
    detail = {
        "trigger_id": "v1/quality/w",
        "reason": "quality",
        "model_version": "v1",
        "window": {"start": "2026-02-24T00:00:00+01:00", "end": "2026-03-03T00:00:00+01:00"},
        "recall_at_decline": 0.61,
    }
    run = retrain_run(detail, post_trigger_days=14, maturity_days=35)
    assert run.input == {
        "trigger_id": "v1/quality/w",
        "reason": "quality",
        "model_version": "v1",
        "trigger_time": "2026-03-02T23:00:00Z",
        "retrain_at": "2026-04-20T23:00:00Z",
    }
    assert retrain_run(dict(detail, recall_at_decline=0.5), 14, 35).input_json() == run.input_json()
    assert ready_at(datetime(2026, 3, 2, 23, tzinfo=UTC), 14, 35) == datetime(
        2026, 4, 20, 23, tzinfo=UTC
    )


def test_an_unreadable_window_end_is_refused() -> None:
    with pytest.raises(InvalidTriggerError, match="window end 'yesterday'"):
        retrain_run({"trigger_id": "t", "window": {"end": "yesterday"}}, 14, 35)


@given(version=st.text(min_size=1, max_size=120), window=st.text(max_size=60))
def test_every_trigger_of_a_version_names_its_run_with_the_versions_prefix(
    version: str, window: str
) -> None:
    prefix = run_prefix(version)
    if prefix is None:  # nothing readable in the version: its runs are not looked for
        assert re.fullmatch(r"[^0-9A-Za-z_]*", version)
        return
    assert execution_name(f"{version}/{window}").startswith(prefix)


def test_a_version_whose_name_extends_another_has_another_prefix() -> None:
    name = execution_name("cardfraud-gbdt-d0de890fd6b/20260304T1200Z")
    assert not name.startswith(run_prefix("cardfraud-gbdt-d0de890fd6"))
