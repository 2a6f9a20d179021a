"""Typed reads of one environment mapping, for :class:`app.config.Settings`.

Every read names its variable in the error, so a bad value stops the process with
one clear line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from app.inputs import InvalidInput, canonical_phone, external_id

T = TypeVar("T")
HOST = re.compile(r"(https?://)?[a-z0-9]([a-z0-9.-]{0,252})(:[0-9]{1,5})?", re.ASCII)


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class Env:
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
            raise ConfigError(name, f"must be {shape} (got {preview(value)})")
        return value

    def url(self, name: str, default: str | None) -> str:
        value = self.optional(name)
        if value is None:
            if default is None:
                raise ConfigError(name, "is required but not set")
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"must be an http(s) URL (got {preview(value)})")
        if parts.query or parts.fragment:
            raise ConfigError(name, "must not contain a query or fragment")
        return value.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        return self.url(name, None) if self.optional(name) else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false (got {preview(raw)})")

    def channel_map(self, name: str) -> tuple[tuple[str, str], ...]:
        """``channelId=+15551230000,channelId2=+1555…``: which number serves each channel."""
        value = self.optional(name)
        if value is None:
            return ()
        pairs: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            channel, _, number = part.partition("=")
            try:
                channel = external_id(channel.strip(), "channel id")
                pairs[channel] = canonical_phone(number.strip())
            except InvalidInput:
                raise ConfigError(name, f"entry {preview(part)} must be channelId=+E164") from None
        return tuple(pairs.items())

    def host_list(self, name: str) -> tuple[str, ...]:
        """``host`` or ``host:port`` entries (``http://host:port`` allows plain HTTP)."""
        value = self.optional(name)
        if value is None:
            return ()
        hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
        for host in hosts:
            if not HOST.fullmatch(host):
                raise ConfigError(name, f"entry {preview(host)} must be host or host:port")
        return hosts

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
                raise ConfigError(name, f"entry {preview(part)} is not an E.164 number "
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
            raise ConfigError(name, f"must be {label} (got {preview(raw)})") from None
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
            raise ConfigError(name, f"must be one of {', '.join(allowed)} (got {preview(raw)})")
        return value


def preview(value: str) -> str:
    """Show enough of a bad value to recognise it, never a whole secret."""
    return repr(value if len(value) <= 12 else value[:8] + "…")
