"""The process-wide dependencies, built once at start and passed down.

Web and worker both build one :class:`Services`; tests build their own with a
test database and simulator URLs. Adapters are created lazily so the web
process never opens a connection to CXone or Twilio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from app.config import Settings
from db.pool import Database

if TYPE_CHECKING:
    from app.cxone import CxonePort
    from app.twilio_client import SignatureChecker, TwilioPort

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Settings, the database pool and the outside-world adapters of one process."""

    settings: Settings
    db: Database
    process_name: str = "smsgw"
    # The adapters, when given (tests pass in-memory fakes); built from settings otherwise.
    cxone_adapter: CxonePort | None = None
    twilio_adapter: TwilioPort | None = None
    _closed: bool = field(default=False, init=False)

    @cached_property
    def cxone(self) -> CxonePort:
        """The CXone adapter of CXONE_MODE (app/cxone/)."""
        from app.cxone import build_cxone

        return self.cxone_adapter or build_cxone(self.settings)

    @cached_property
    def twilio(self) -> TwilioPort:
        from app.twilio_client import TwilioGateway

        return self.twilio_adapter or TwilioGateway(self.settings)

    @cached_property
    def twilio_validator(self) -> SignatureChecker:
        from app.twilio_client import SignatureChecker

        return SignatureChecker(self.settings.twilio_auth_token)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.close()


def current_services() -> Services:
    """The services of the Flask app handling this request (built by app.create_app)."""
    from flask import current_app

    services: Services = current_app.extensions["services"]
    return services


def build_services(settings: Settings, *, process_name: str,
                   pool_size: int | None = None) -> Services:
    """Services for ``settings``; DATABASE_URL unset → the embedded Postgres (local runs)."""
    from db.embedded import resolve_database_url

    url = resolve_database_url(settings.database_url)
    size = pool_size or settings.database_pool_size
    if process_name == "web":
        # Twilio gives up after 15 s: wait at most 10 s for a connection, and beyond a
        # queue of 8 per connection refuse at once (503; Twilio retries) so the queue,
        # and every answer's wait, stays bounded under overload.
        db = Database(url, max_size=size, application_name=f"smsgw-{process_name}",
                      acquire_timeout_s=10.0, max_waiting=8 * size)
    else:
        db = Database(url, max_size=size, application_name=f"smsgw-{process_name}")
    return Services(settings=settings, db=db, process_name=process_name)
