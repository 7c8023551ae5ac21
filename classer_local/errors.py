"""The error tree of classer_local.

Every error carries the hosted API's error body: ``error`` (the kind), ``code``
(stable, machine-readable), ``message``, ``details`` and ``docs_url``.
Each class also inherits the builtin a caller would naturally catch.

    ClasserError(Exception)
    ├── InvalidRequestError(ValueError)          400  invalid_request_error
    │   └── InputTooLongError                    400  (truncate="NONE" over the window)
    ├── AuthenticationError                      401  authentication_error
    ├── InsufficientBalanceError                 402  insufficient_balance
    ├── PermissionDeniedError(PermissionError)   403  permission_error (``forbidden``: not for this key)
    ├── NotFoundError(LookupError)               404  not_found_error
    ├── ConflictError                            409  conflict_error
    ├── UnprocessableInputError(ValueError)      422  unprocessable_entity
    │   └── InputNotAllowedError                 422  (``path_not_allowed``, ``url_not_allowed``: the input
    │                                                  policy refused it; says nothing of the target)
    ├── RateLimitError                           429  rate_limit_error
    └── ServerError(RuntimeError)                500  api_error
        └── ModelNotInstalledError(ImportError)  500  (weights absent; says how to install)

The HTTP status of an error comes from one table, ``STATUS`` (by code, else by kind).
"""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://github.com/classer-local/classer_local/blob/main/docs/errors.md"

__all__ = [
    "AuthenticationError",
    "ClasserError",
    "ConflictError",
    "InputNotAllowedError",
    "InputTooLongError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "ModelNotInstalledError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "STATUS",
    "ServerError",
    "UnprocessableInputError",
    "status_for",
]


class ClasserError(Exception):
    """Base of every classer_local error.

    Example:
        >>> from classer_local.errors import InvalidRequestError
        >>> e = InvalidRequestError("labels_empty", "At least one label is required.")
        >>> e.to_dict()["code"]
        'labels_empty'
    """

    error: str = "api_error"

    @property
    def status(self) -> int:
        """The HTTP status the server answers this error with (``STATUS``)."""
        return status_for(self)

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    @property
    def docs_url(self) -> str:
        return f"{DOCS_URL}#{self.code}"

    def to_dict(self) -> dict[str, Any]:
        """The hosted API's error body."""
        return {
            "error": self.error,
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "docs_url": self.docs_url,
        }

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]\n\nFor further information visit {self.docs_url}"

    def __reduce__(self):  # keep code/details across pickling (process pools, Ray)
        return (_rebuild, (type(self), self.code, self.message, self.details))

    # KeyError's __str__ would repr() the message; keep ours.
    __repr__ = object.__repr__


def _rebuild(cls: type[ClasserError], code: str, message: str, details: dict[str, Any]) -> ClasserError:
    return cls(code, message, details)


class InvalidRequestError(ClasserError, ValueError):
    error = "invalid_request_error"


class InputTooLongError(InvalidRequestError):
    """A text is longer than the model's window and truncation was turned off."""


class AuthenticationError(ClasserError):
    error = "authentication_error"


class InsufficientBalanceError(ClasserError):
    error = "insufficient_balance"


class PermissionDeniedError(ClasserError, PermissionError):
    """The caller is known but may not do this (e.g. a non-admin key on an admin route: ``forbidden``).

    Also a ``PermissionError``, the builtin a caller would catch for "not allowed".
    """

    error = "permission_error"


class NotFoundError(ClasserError, LookupError):
    error = "not_found_error"


class ConflictError(ClasserError):
    error = "conflict_error"


class UnprocessableInputError(ClasserError, ValueError):
    """An input was well-formed but could not be read (corrupt image, encrypted PDF...)."""

    error = "unprocessable_entity"


class InputNotAllowedError(UnprocessableInputError):
    """The input policy refused an input: a path where paths are not read (``path_not_allowed``),
    or a URL that may not be fetched (``url_not_allowed``). The message is the same whatever
    the target's state (missing file, closed port, private address, 404), so it reveals nothing."""


class RateLimitError(ClasserError):
    error = "rate_limit_error"

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None, retry_after: float = 1.0
    ) -> None:
        super().__init__(code, message, details)
        self.retry_after = retry_after


class ServerError(ClasserError, RuntimeError):
    error = "api_error"


class ModelNotInstalledError(ServerError, ImportError):
    """The model's weights are not on this machine; the message says how to install them."""


STATUS: dict[str, int] = {
    # by kind (``ClasserError.error``)
    "invalid_request_error": 400,
    "authentication_error": 401,
    "insufficient_balance": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "unprocessable_entity": 422,
    "rate_limit_error": 429,
    "api_error": 500,
    # codes whose status differs from their kind's
    "method_not_allowed": 405,
    "request_too_large": 413,
    "unsupported_media_type": 415,
    "not_implemented": 501,
    "request_timeout": 504,
}
"""The HTTP status of every error, the only place one is chosen: a code's own entry, else its
kind's; 500 for anything unknown. The server answers with it; ``ClasserError.status`` reads it."""


def status_for(exc: ClasserError) -> int:
    """The HTTP status of ``exc`` (see ``STATUS``)."""
    return STATUS.get(exc.code) or STATUS.get(exc.error, 500)
