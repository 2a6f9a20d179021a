"""The status state machine: forward only, final is final, the CXone mapping."""

from __future__ import annotations

import pytest

from app.statuses import (
    cxone_moves_forward,
    report_for_final,
    should_redispatch,
    twilio_rank,
)


def test_twilio_ranks_follow_the_lifecycle() -> None:
    order = ["accepted", "queued", "sending", "sent", "delivered"]
    assert [twilio_rank(s) for s in order] == sorted(twilio_rank(s) for s in order)
    assert len({twilio_rank(s) for s in order}) == len(order)
    finals = {twilio_rank(s) for s in ("delivered", "undelivered", "failed", "canceled")}
    assert finals == {4}  # smsgw_apply_receipt treats rank 4 as final
    assert twilio_rank("exploded") < twilio_rank("accepted")


@pytest.mark.parametrize(("current", "new", "expected"), [
    (None, "SENT", True),
    ("PENDING", "SENT", True),
    ("SENT", "DELIVERED", True),
    ("SENT", "SENT", False),
    ("DELIVERED", "SENT", False),
    ("FAILED", "DELIVERED", False),
    (None, "FAILED", True),
])
def test_cxone_status_never_moves_backwards(current, new, expected) -> None:
    assert cxone_moves_forward(current, new) is expected


def test_only_final_statuses_map_to_cxone() -> None:
    for status in ("accepted", "queued", "sending", "sent"):
        assert report_for_final(status, None) is None
    assert report_for_final("delivered", None).status == "DELIVERED"
    undelivered = report_for_final("undelivered", 30003)
    assert (undelivered.status, undelivered.reason_code) == ("UNDELIVERABLE", "30003")
    assert undelivered.reason_message == "Unreachable destination handset"
    failed = report_for_final("failed", 30007)
    assert (failed.status, failed.reason_code) == ("FAILED", "30007")
    assert report_for_final("canceled", None).status == "FAILED"


def test_30008_and_30022_are_redispatched_not_reported() -> None:
    assert should_redispatch("failed", 30008)
    assert should_redispatch("failed", 30022)
    assert not should_redispatch("failed", 30007)
    assert not should_redispatch("undelivered", 30008)
