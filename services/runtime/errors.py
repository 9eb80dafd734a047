"""The one error vocabulary of the model services.

Each error's message is written for the caller and is safe to send; anything not listed
here is an internal error whose details stay in the log. This module knows nothing of
gRPC: ``services.runtime.status`` maps each error to a status code in one place.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error whose message may be shown to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    """The request breaks a documented rule (empty text, a limit exceeded, a bad option)."""


class ModelNotFound(ServiceError):
    """The request names a model or version this service does not host."""


class Overloaded(ServiceError):
    """The queue is full; the caller should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExpired(ServiceError):
    """The request's deadline passed before its work could run."""


class Unavailable(ServiceError):
    """The service cannot take the request now (loading or draining); retry elsewhere."""
