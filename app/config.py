"""Settings: the one reader of ``os.environ`` (after ``.env`` is loaded).

Every process builds one :class:`Settings` at start. A missing or malformed
value raises :class:`ConfigError` naming the variable; entry points turn that
into one line on stderr and a non-zero exit (see :func:`exit_on_config_error`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from app.env import ConfigError, Env

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}", re.ASCII)
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}", re.ASCII)

DEFAULT_HELP_REPLY = (
    "SMS support: reply to this message and an agent will answer, or visit our website. "
    "Msg & data rates may apply. Msg frequency varies. Reply STOP to opt out, START to opt back in."
)

CONSENT_MODES = ("opt-in", "opt-out")
CXONE_MODES = ("open-messaging", "dfo")
LONG_REPLY_MODES = ("split", "reject")
# Where Twilio's MediaUrl points (api.twilio.com) and where it redirects to once
# "Enforce HTTP Auth on Media URLs" is on (docs/CONTENT.md has the sources).
TWILIO_MEDIA_HOSTS = ("api.twilio.com", "mms.twiliocdn.com", "media.twiliocdn.com")


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads from its environment, validated."""

    cxone_client_id: str
    cxone_client_secret: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_messaging_service_sid: str
    public_base_url: str
    database_url: str | None = None
    cxone_api_base_url: str = "https://api.nice-incontact.com"
    cxone_token_url: str = "https://cxone.niceincontact.com/auth/token"
    cxone_webhook_token: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    sender_numbers: tuple[str, ...] = ()
    sender_mps: float = 0.8
    service_mps: float | None = None
    consent_mode: str = "opt-in"
    admin_token: str | None = None
    console_session_ttl_s: float = 8 * 3600.0
    help_reply: str = DEFAULT_HELP_REPLY
    poll_interval_s: float = 2.0
    retry_30008_delay_s: float = 30.0
    reconcile_sent_after_s: float = 300.0
    reconcile_pending_after_s: float = 900.0
    port: int = 5000
    # Beyond DESIGN §5: tuning knobs with safe defaults (documented in .env.example).
    poll_page_size: int = 50
    worker_concurrency: int = 16
    receipt_max_age_s: float = 72 * 3600.0
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    max_attempts: int = 5
    twilio_timeout_s: float = 15.0
    job_lease_s: float = 60.0
    outbox_retention_s: float = 7 * 86400.0
    dedupe_retention_s: float = 30 * 86400.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = None
    database_pool_size: int = 10
    web_body_timeout_s: float = 10.0
    log_level: str = "INFO"
    # CXONE_MODE=dfo: a real tenant's DFO 3.0 "Bring Your Own Channel" (docs/contracts).
    cxone_mode: str = "open-messaging"
    byoc_client_id: str | None = None
    byoc_client_secret: str | None = None
    byoc_token_ttl_s: float = 3600.0
    cxone_issuer_url: str = "https://cxone.niceincontact.com"
    cxone_access_key_id: str | None = None
    cxone_access_key_secret: str | None = None
    cxone_dfo_base_url: str | None = None
    dfo_channels: tuple[tuple[str, str], ...] = ()  # (channel id, our number)
    dfo_duplicate_window_s: float = 120.0
    # Message content: encoding, long replies, media (docs/CONTENT.md).
    smart_encoding: bool = True
    max_segments: int = 10
    long_reply: str = "split"
    media_fetch_allowed_hosts: tuple[str, ...] = ()
    media_retention_s: float = 7 * 86400.0
    media_fetch_allow_private: bool = False  # the sandbox fetches from 127.0.0.1
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def our_numbers(self) -> tuple[str, ...]:
        """Every number the gateway sends from: the pool and the DFO channels' numbers."""
        return tuple(dict.fromkeys(self.sender_numbers + tuple(n for _, n in self.dfo_channels)))

    @property
    def effective_service_mps(self) -> float:
        """Rate for messages whose sender Twilio picks (DESIGN §5 default rule)."""
        if self.service_mps is not None:
            return self.service_mps
        return self.sender_mps * max(1, len(self.our_numbers))

    @property
    def twilio_ambiguity_window_s(self) -> float:
        """How long after an unanswered create a lookup can trust "not found".

        Our request gave up after connect + read timeouts; Twilio then needs a
        moment to list what it accepted.
        """
        return 2 * min(5.0, self.twilio_timeout_s) + self.twilio_timeout_s

    @property
    def receipts_url(self) -> str:
        """The StatusCallback URL given to Twilio."""
        return self.public_base_url + "/twilio/receipts"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (tests and benchmarks)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings from ``environ`` (default: ``os.environ``)."""
        env = Env(os.environ if environ is None else environ)
        senders = env.number_list("SENDER_NUMBERS")
        settings = cls(
            database_url=env.optional("DATABASE_URL"),
            cxone_api_base_url=env.url("CXONE_API_BASE_URL", cls.cxone_api_base_url),
            cxone_token_url=env.url("CXONE_TOKEN_URL", cls.cxone_token_url),
            cxone_client_id=env.required("CXONE_CLIENT_ID"),
            cxone_client_secret=env.required("CXONE_CLIENT_SECRET"),
            cxone_webhook_token=env.optional("CXONE_WEBHOOK_TOKEN"),
            twilio_account_sid=env.matching("TWILIO_ACCOUNT_SID", ACCOUNT_SID,
                                            '"AC" followed by 32 hex digits'),
            twilio_auth_token=env.required("TWILIO_AUTH_TOKEN"),
            twilio_messaging_service_sid=env.matching(
                "TWILIO_MESSAGING_SERVICE_SID", MESSAGING_SERVICE_SID,
                '"MG" followed by 32 hex digits'),
            twilio_api_base_url=env.url("TWILIO_API_BASE_URL", cls.twilio_api_base_url),
            public_base_url=env.url("PUBLIC_BASE_URL", None),
            sender_numbers=senders,
            sender_mps=env.number("SENDER_MPS", cls.sender_mps, float, minimum=0.001),
            service_mps=env.number("SERVICE_MPS", None, float, minimum=0.001),
            consent_mode=env.choice("CONSENT_MODE", CONSENT_MODES, cls.consent_mode),
            admin_token=env.optional("ADMIN_TOKEN"),
            console_session_ttl_s=env.number("CONSOLE_SESSION_TTL_S", cls.console_session_ttl_s,
                                             float, minimum=60, maximum=7 * 86400),
            help_reply=env.optional("HELP_REPLY") or DEFAULT_HELP_REPLY,
            poll_interval_s=env.number("POLL_INTERVAL_S", cls.poll_interval_s, float, minimum=0.01),
            retry_30008_delay_s=env.number("RETRY_30008_DELAY_S", cls.retry_30008_delay_s, float,
                                           minimum=0),
            reconcile_sent_after_s=env.number("RECONCILE_SENT_AFTER_S",
                                              cls.reconcile_sent_after_s, float, minimum=1),
            reconcile_pending_after_s=env.number("RECONCILE_PENDING_AFTER_S",
                                                 cls.reconcile_pending_after_s, float, minimum=1),
            port=env.number("PORT", cls.port, int, minimum=1, maximum=65535),
            poll_page_size=env.number("POLL_PAGE_SIZE", cls.poll_page_size, int, minimum=1,
                                      maximum=100),
            worker_concurrency=env.number("WORKER_CONCURRENCY", cls.worker_concurrency, int,
                                          minimum=1, maximum=500),
            receipt_max_age_s=env.number("RECEIPT_MAX_AGE_S", cls.receipt_max_age_s, float,
                                         minimum=1),
            retry_base_s=env.number("RETRY_BASE_S", cls.retry_base_s, float, minimum=0.01),
            retry_max_s=env.number("RETRY_MAX_S", cls.retry_max_s, float, minimum=0.01),
            twilio_timeout_s=env.number("TWILIO_TIMEOUT_S", cls.twilio_timeout_s, float,
                                        minimum=0.5, maximum=120),
            job_lease_s=env.number("JOB_LEASE_S", cls.job_lease_s, float, minimum=2),
            outbox_retention_s=env.number("OUTBOX_RETENTION_S", cls.outbox_retention_s, float,
                                          minimum=60),
            dedupe_retention_s=env.number("DEDUPE_RETENTION_S", cls.dedupe_retention_s, float,
                                          minimum=86400),
            metrics_port=env.number("METRICS_PORT", None, int, minimum=1, maximum=65535),
            metrics_host=env.optional("METRICS_HOST") or cls.metrics_host,
            metrics_token=env.optional("METRICS_TOKEN"),
            database_pool_size=env.number("DATABASE_POOL_SIZE", cls.database_pool_size, int,
                                          minimum=2, maximum=200),
            web_body_timeout_s=env.number("WEB_BODY_TIMEOUT_S", cls.web_body_timeout_s, float,
                                          minimum=0.5, maximum=300),
            log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO",
                                 upper=True),
            cxone_mode=env.choice("CXONE_MODE", CXONE_MODES, cls.cxone_mode),
            byoc_client_id=env.optional("BYOC_CLIENT_ID"),
            byoc_client_secret=env.optional("BYOC_CLIENT_SECRET"),
            byoc_token_ttl_s=env.number("BYOC_TOKEN_TTL_S", cls.byoc_token_ttl_s, float,
                                        minimum=60, maximum=86400),
            cxone_issuer_url=env.url("CXONE_ISSUER_URL", cls.cxone_issuer_url),
            cxone_access_key_id=env.optional("CXONE_ACCESS_KEY_ID"),
            cxone_access_key_secret=env.optional("CXONE_ACCESS_KEY_SECRET"),
            cxone_dfo_base_url=env.optional_url("CXONE_DFO_BASE_URL"),
            dfo_channels=env.channel_map("DFO_CHANNELS"),
            dfo_duplicate_window_s=env.number("DFO_DUPLICATE_WINDOW_S",
                                              cls.dfo_duplicate_window_s, float, minimum=1,
                                              maximum=86400),
            smart_encoding=env.flag("SMART_ENCODING", cls.smart_encoding),
            max_segments=env.number("MAX_SEGMENTS", cls.max_segments, int, minimum=1,
                                    maximum=10),
            long_reply=env.choice("LONG_REPLY", LONG_REPLY_MODES, cls.long_reply),
            media_fetch_allowed_hosts=env.host_list("MEDIA_FETCH_ALLOWED_HOSTS") or
            _default_media_hosts(env),
            media_retention_s=env.number("MEDIA_RETENTION_S", cls.media_retention_s, float,
                                         minimum=600),
            media_fetch_allow_private=env.flag("MEDIA_FETCH_ALLOW_PRIVATE",
                                               cls.media_fetch_allow_private),
        )
        if len(set(senders)) != len(senders):
            raise ConfigError("SENDER_NUMBERS", "lists the same number twice")
        if settings.job_lease_s < settings.twilio_timeout_s + 1:
            raise ConfigError("JOB_LEASE_S", "must be longer than TWILIO_TIMEOUT_S "
                              "(a send must finish within its lease)")
        if settings.cxone_mode == "dfo":
            for name in ("BYOC_CLIENT_ID", "BYOC_CLIENT_SECRET", "CXONE_ACCESS_KEY_ID",
                         "CXONE_ACCESS_KEY_SECRET"):
                env.required(name)  # required in dfo mode: CXone cannot connect without them
        return settings


def _default_media_hosts(env: Env) -> tuple[str, ...]:
    """The CXone API host (attachments of agent replies) and Twilio's media hosts."""
    hosts = [urlsplit(env.url("CXONE_API_BASE_URL", Settings.cxone_api_base_url)).netloc]
    dfo = env.optional_url("CXONE_DFO_BASE_URL")
    if dfo:
        hosts.append(urlsplit(dfo).netloc)
    return tuple(dict.fromkeys(hosts + list(TWILIO_MEDIA_HOSTS)))


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Only ``DATABASE_URL``: what ``python -m db`` needs, without the gateway's secrets."""
    env = Env(os.environ if environ is None else environ)
    return env.optional("DATABASE_URL")


def load_dotenv_file(path: str = ".env") -> None:
    """Load ``.env`` from the working directory; real environment variables win."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)


@contextmanager
def exit_on_config_error(program: str) -> Iterator[None]:
    """Turn a configuration problem into one stderr line and exit status 78 (EX_CONFIG):
    a bad variable (:class:`ConfigError`), or no database to use (DATABASE_URL unset and
    the embedded Postgres not installed or not starting)."""
    from db.embedded import EmbeddedUnavailable

    try:
        yield
    except ConfigError as exc:
        print(f"{program}: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(78) from None
    except EmbeddedUnavailable as exc:
        print(f"{program}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(78) from None
