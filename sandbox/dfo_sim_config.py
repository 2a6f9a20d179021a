"""The DFO simulator's settings: :class:`DfoSimConfig` and how the environment sets it.

Environment (empty = unset): ``CXONE_CLIENT_ID``, ``CXONE_CLIENT_SECRET``,
``CXONE_ACCESS_KEY_ID``, ``CXONE_ACCESS_KEY_SECRET``, ``DFO_SIM_TENANT_ID``,
``DFO_SIM_ISSUER_URL``, ``DFO_SIM_GATEWAY_URL``, ``BYOC_CLIENT_ID``,
``BYOC_CLIENT_SECRET``, ``DFO_SIM_BYOC_TOKEN_FORMAT`` (form|json),
``DFO_SIM_TOKEN_TTL_S``, ``DFO_SIM_ENFORCE_LIMITS``, ``DFO_CHANNELS``, and
``DFO_SIM_LATENCY_MS`` / ``DFO_SIM_LATENCY_JITTER_MS`` (the API's response time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox import defaults, latency
from sandbox.dfo_sim_model import E164


@dataclass
class DfoSimConfig:
    """The simulated tenant; the control API can change most of it at run time."""

    client_id: str = defaults.CXONE_CLIENT_ID
    client_secret: str = defaults.CXONE_CLIENT_SECRET
    access_key_id: str = defaults.DFO_ACCESS_KEY_ID
    access_key_secret: str = defaults.DFO_ACCESS_KEY_SECRET
    tenant_id: str = defaults.DFO_TENANT_ID
    area: str = "na1"
    domain: str = "niceincontact.com"
    issuer_url: str | None = None  # None: the URL the request came in on
    token_ttl_s: int = 3600
    ott_ttl_s: int = 300
    brand_id: int = defaults.DFO_BRAND_ID
    brand_name: str = defaults.DFO_BRAND_NAME
    channels: dict[str, str] = field(default_factory=lambda: dict(defaults.DFO_CHANNELS))
    # The agent side: where CXone calls the gateway, and with what.
    gateway_url: str | None = None
    byoc_client_id: str = defaults.BYOC_CLIENT_ID
    byoc_client_secret: str = defaults.BYOC_CLIENT_SECRET
    byoc_token_format: str = "form"  # form | json
    gateway_timeout_s: float = 10.0
    # CXone's published limits; counted always, answered with 429 only when enforced.
    enforce_limits: bool = False
    contact_burst: int = 250
    contact_refill_per_min: float = 17.0
    tenant_limit_per_hour: int = 360_000
    # How long the API (not the control API) takes to answer: p50 and jitter (sandbox.latency).
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0


def config_from_env(environ: Mapping[str, str]) -> DfoSimConfig:
    """Read the simulator's settings from the environment (empty = unset); see docs/SANDBOX.md."""

    def value(name: str) -> str | None:
        return (environ.get(name) or "").strip() or None

    config = DfoSimConfig()
    for attr, name in (("client_id", "CXONE_CLIENT_ID"), ("client_secret", "CXONE_CLIENT_SECRET"),
                       ("access_key_id", "CXONE_ACCESS_KEY_ID"),
                       ("access_key_secret", "CXONE_ACCESS_KEY_SECRET"),
                       ("tenant_id", "DFO_SIM_TENANT_ID"), ("issuer_url", "DFO_SIM_ISSUER_URL"),
                       ("gateway_url", "DFO_SIM_GATEWAY_URL"),
                       ("byoc_client_id", "BYOC_CLIENT_ID"),
                       ("byoc_client_secret", "BYOC_CLIENT_SECRET"),
                       ("byoc_token_format", "DFO_SIM_BYOC_TOKEN_FORMAT")):
        setattr(config, attr, value(name) or getattr(config, attr))
    if config.byoc_token_format not in ("form", "json"):
        raise ValueError("DFO_SIM_BYOC_TOKEN_FORMAT must be form or json")
    ttl = value("DFO_SIM_TOKEN_TTL_S")
    if ttl is not None:
        if not ttl.isdigit() or int(ttl) < 1:
            raise ValueError(f"DFO_SIM_TOKEN_TTL_S must be a positive integer, got {ttl!r}")
        config.token_ttl_s = int(ttl)
    config.latency_ms, config.latency_jitter_ms = latency.from_env(environ, "DFO_SIM")
    config.enforce_limits = (value("DFO_SIM_ENFORCE_LIMITS") or "").lower() in ("1", "true", "yes")
    channels = value("DFO_CHANNELS")
    if channels:
        config.channels = parse_channels(channels)
    return config


def parse_channels(text: str) -> dict[str, str]:
    """``channelId=+15551230000,channelId2=+1555…`` (the gateway's ``DFO_CHANNELS``)."""
    channels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        channel_id, _, number = item.partition("=")
        if not channel_id.strip() or not E164.fullmatch(number.strip()):
            raise ValueError(f"DFO_CHANNELS entry must be channelId=+E164, got {item!r}")
        channels[channel_id.strip()] = number.strip()
    return channels
