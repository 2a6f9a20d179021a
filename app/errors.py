"""The gateway's own small set of errors.

Adapters translate library exceptions (psycopg, requests, twilio) into these at
the boundary; nothing above the adapters catches a library exception.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class TransientError(GatewayError):
    """Worth retrying later: timeouts, 429, 5xx, a database that went away.

    ``retry_after`` is the wait the other side asked for (seconds), if any.
    ``ambiguous`` means the request may have been carried out even though no
    answer came back (a timeout or dropped connection after sending).
    """

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None,
                 ambiguous: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.status = status


class PermanentError(GatewayError):
    """Retrying cannot help: a rejected request, an unknown resource, bad credentials."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class DatabaseUnavailable(TransientError):
    """Postgres could not be reached or dropped the connection."""


class DatabaseBusy(DatabaseUnavailable):
    """Postgres answered, but asked us to try again (serialization failure, deadlock, lock).

    A kind of "unavailable for now" for every retry loop; answers say "busy".
    """


class RejectedByDatabase(PermanentError):
    """Postgres refused the data itself (too long for an index, invalid text, a constraint).

    Retrying the same data cannot help; the message says what kind of problem it
    was without echoing the database's own text (which names tables and indexes).
    """


class AuthenticationFailed(PermanentError):
    """The other side refused our credentials (a configuration problem, not a bug)."""


class NotFound(PermanentError):
    """The other side does not know the resource (HTTP 404)."""


class Conflict(PermanentError):
    """The other side refused because of the resource's state (HTTP 409)."""
