"""An agent reply as the DFO simulator's control API takes it (``POST /_sandbox/agent-replies``).

``{"channelId", "threadId" | "customer" (+ "business"), "text", "attachments"?,
"mode"?: "3.0"|"legacy", "repeat"?, "cxoneMessageId"?, "extra"?, "raw"?, "bearer"?}``;
see docs/SANDBOX.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.control import bad_request, int_field, str_field, url_field
from sandbox.dfo_sim_agent import Reply
from sandbox.dfo_sim_model import E164, MAX_ATTACHMENTS, MAX_TEXT, THREAD_ID, digits, thread_id_for

MAX_REPEAT = 20


def parse_reply(body: dict[str, Any], channels: dict[str, str],
                file_url: Callable[[str], str | None]) -> Reply:
    """A :class:`Reply` from a control body (ControlError 400 on a bad one).

    ``channels`` maps the known channel ids to their numbers; ``file_url(name)``
    is the URL of a file the simulator serves (None: no such file).
    """
    channel_id = str(str_field(body, "channelId", required=True, max_len=255))
    mode = body.get("mode", "3.0")
    if mode not in ("3.0", "legacy"):
        raise bad_request('mode must be "3.0" or "legacy"')
    thread_id, customer = _thread_and_customer(body, channels.get(channel_id))
    text = str_field(body, "text", "", max_len=MAX_TEXT) or ""
    raw = body.get("raw")
    if raw is not None and not isinstance(raw, dict):
        raise bad_request("raw must be an object (the body sent as is)")
    extra = body.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise bad_request("extra must be an object (merged into the body)")
    return Reply(
        channel_id=channel_id, thread_id=thread_id, customer=customer, text=text,
        attachments=_attachments(body.get("attachments"), file_url), mode=mode,
        repeat=int_field(body, "repeat", 1, 1, MAX_REPEAT) or 1,
        cxone_message_id=str_field(body, "cxoneMessageId", max_len=255),
        extra=extra, raw=raw, bearer=str_field(body, "bearer", max_len=4096),
    )


def _thread_and_customer(body: dict[str, Any], channel_number: str | None) -> tuple[str, str]:
    """The thread from ``threadId``, else from the customer and business numbers."""
    thread_id = str_field(body, "threadId", max_len=255)
    customer = str_field(body, "customer", max_len=16)
    if customer is not None and not E164.fullmatch(customer):
        raise bad_request("customer must be E.164")
    if thread_id is not None:
        if customer is None:
            if not THREAD_ID.fullmatch(thread_id):
                raise bad_request("give customer when threadId is not {business}_{customer}")
            customer = "+" + thread_id.partition("_")[2]
        return thread_id, customer
    if customer is None:
        raise bad_request("give threadId, or customer (and business)")
    business = str_field(body, "business", max_len=16) or channel_number
    if business is None or not E164.fullmatch(business):
        raise bad_request("give business (E.164): the channel is unknown to the simulator")
    return thread_id_for(business, customer), "+" + digits(customer)


def _attachments(value: Any, file_url: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """``[{"url", "friendlyName"}]`` or ``[{"file": name}]`` for a file served here."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise bad_request(f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"attachments[{index}] must be an object")
        name = str_field(item, "file", max_len=128)
        if name is not None:
            url = file_url(name)
            if url is None:
                raise bad_request(f"attachments[{index}].file: no file {name!r}")
            items.append({"friendlyName": str_field(item, "friendlyName", name), "url": url})
        else:
            items.append({"friendlyName": str_field(item, "friendlyName", "attachment"),
                          "url": url_field(item, "url", required=True)})
    return items
