"""Errors raised by the store. Messages name URLs, never tokens or passwords."""

from __future__ import annotations

from dataclasses import dataclass


class StoreError(Exception):
    """Base class of every store error."""


class ConfigurationError(StoreError):
    """The store was configured with a value it cannot use."""


class InvalidNameError(StoreError, ValueError):
    """A measurement, tag key or field name that could inject query syntax."""


class StoreUnavailableError(StoreError):
    """The server could not be reached (after retries) or answered 5xx."""


class AuthenticationError(StoreError):
    """The server refused the credentials (401/403); not retried."""


class QueryError(StoreError):
    """The server rejected a query."""


@dataclass(frozen=True)
class RejectedPoint:
    """One point that was not written, and why.

    ``index`` is the point's position in the batch handed to ``write``
    (row number for a DataFrame), ``point`` a short rendering of it.
    """

    index: int
    point: str
    reason: str

    def __str__(self) -> str:
        return f"#{self.index} {self.point}: {self.reason}"


class PointsRejectedError(StoreError):
    """Some points of a batch were malformed; all the others were written.

    Attributes
    ----------
    rejected : list[RejectedPoint]
    written : int
        Number of points of the batch that were stored.
    """

    def __init__(self, rejected: list[RejectedPoint], written: int) -> None:
        self.rejected = rejected
        self.written = written
        shown = "; ".join(str(r) for r in rejected[:5])
        more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
        super().__init__(
            f"{len(rejected)} malformed point(s) rejected, {written} written: {shown}{more}"
        )
