"""JSON log lines: stable event name, numbers masked wherever they appear."""

from __future__ import annotations

import json
import logging

from app.logs import JsonFormatter, event, mask_phone


def test_mask_phone() -> None:
    assert mask_phone("+14155559876") == "+1415***9876"
    assert mask_phone("to +14155559876 and +18005551234") == "to +1415***9876 and +1800***1234"
    assert mask_phone(None) is None


def test_json_line_masks_numbers_in_any_field(caplog) -> None:
    log = logging.getLogger("test.logs")
    with caplog.at_level(logging.INFO, logger="test.logs"):
        event(log, "send.created", to="+14155559876", detail={"from": "+18005551234"})
    line = JsonFormatter().format(caplog.records[-1])
    data = json.loads(line)
    assert data["event"] == "send.created"
    assert data["to"] == "+1415***9876"
    assert "+14155559876" not in line and "+18005551234" not in line
