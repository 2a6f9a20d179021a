"""Settings: the one reader of ``os.environ`` (after ``.env`` is loaded).

Every process builds one :class:`Settings` at start. A missing or malformed
value raises :class:`ConfigError` naming the variable; entry points turn that
into one line on stderr and a non-zero exit (see :func:`exit_on_config_error`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from app.inputs import InvalidInput, canonical_phone

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}", re.ASCII)
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}", re.ASCII)

DEFAULT_HELP_REPLY = (
    "SMS support: reply to this message and an agent will answer, or visit our website. "
    "Msg & data rates may apply. Msg frequency varies. Reply STOP to opt out, START to opt back in."
)

CONSENT_MODES = ("opt-in", "opt-out")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


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
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def effective_service_mps(self) -> float:
        """Rate for messages whose sender Twilio picks (DESIGN §5 default rule)."""
        if self.service_mps is not None:
            return self.service_mps
        return self.sender_mps * max(1, len(self.sender_numbers))

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
        env = _Env(os.environ if environ is None else environ)
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
        )
        if len(set(senders)) != len(senders):
            raise ConfigError("SENDER_NUMBERS", "lists the same number twice")
        if settings.job_lease_s < settings.twilio_timeout_s + 1:
            raise ConfigError("JOB_LEASE_S", "must be longer than TWILIO_TIMEOUT_S "
                              "(a send must finish within its lease)")
        return settings


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Only ``DATABASE_URL``: what ``python -m db`` needs, without the gateway's secrets."""
    env = _Env(os.environ if environ is None else environ)
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


class _Env:
    """Typed reads of one environment mapping; empty strings count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def optional(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(name, "is required but not set")
        return value

    def matching(self, name: str, pattern: re.Pattern[str], shape: str) -> str:
        value = self.required(name)
        if not pattern.fullmatch(value):
            raise ConfigError(name, f"must be {shape} (got {_preview(value)})")
        return value

    def url(self, name: str, default: str | None) -> str:
        value = self.optional(name)
        if value is None:
            if default is None:
                raise ConfigError(name, "is required but not set")
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"must be an http(s) URL (got {_preview(value)})")
        if parts.query or parts.fragment:
            raise ConfigError(name, "must not contain a query or fragment")
        return value.rstrip("/")

    def number_list(self, name: str) -> tuple[str, ...]:
        value = self.optional(name)
        if value is None:
            return ()
        numbers = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                numbers.append(canonical_phone(part))
            except InvalidInput:
                raise ConfigError(name, f"entry {_preview(part)} is not an E.164 number "
                                        "like +14155550100") from None
        return tuple(numbers)

    def number(self, name: str, default: T, kind: Callable[[str], T], *,
               minimum: float | None = None, maximum: float | None = None) -> T:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            label = "an integer" if kind is int else "a number"
            raise ConfigError(name, f"must be {label} (got {_preview(raw)})") from None
        if minimum is not None and value < minimum:  # type: ignore[operator]
            raise ConfigError(name, f"must be at least {minimum} (got {raw})")
        if maximum is not None and value > maximum:  # type: ignore[operator]
            raise ConfigError(name, f"must be at most {maximum} (got {raw})")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str, *,
               upper: bool = False) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)} (got {_preview(raw)})")
        return value


def _preview(value: str) -> str:
    """Show enough of a bad value to recognise it, never a whole secret."""
    return repr(value if len(value) <= 12 else value[:8] + "…")
