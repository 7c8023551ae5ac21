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

The server maps ``error`` to an HTTP status with ``STATUS_BY_ERROR``.
"""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://github.com/classer-local/classer_local/blob/main/docs/errors.md"

__all__ = [
    "STATUS_BY_ERROR",
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
    "ServerError",
    "UnprocessableInputError",
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
    status: int = 500

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
    status = 400


class InputTooLongError(InvalidRequestError):
    """A text is longer than the model's window and truncation was turned off."""


class AuthenticationError(ClasserError):
    error = "authentication_error"
    status = 401


class InsufficientBalanceError(ClasserError):
    error = "insufficient_balance"
    status = 402


class PermissionDeniedError(ClasserError, PermissionError):
    """The caller is known but may not do this (e.g. a non-admin key on an admin route: ``forbidden``).

    Also a ``PermissionError``, the builtin a caller would catch for "not allowed".
    """

    error = "permission_error"
    status = 403


class NotFoundError(ClasserError, LookupError):
    error = "not_found_error"
    status = 404


class ConflictError(ClasserError):
    error = "conflict_error"
    status = 409


class UnprocessableInputError(ClasserError, ValueError):
    """An input was well-formed but could not be read (corrupt image, encrypted PDF...)."""

    error = "unprocessable_entity"
    status = 422


class InputNotAllowedError(UnprocessableInputError):
    """The input policy refused an input: a path where paths are not read (``path_not_allowed``),
    or a URL that may not be fetched (``url_not_allowed``). The message is the same whatever
    the target's state (missing file, closed port, private address, 404), so it reveals nothing."""


class RateLimitError(ClasserError):
    error = "rate_limit_error"
    status = 429

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None, retry_after: float = 1.0
    ) -> None:
        super().__init__(code, message, details)
        self.retry_after = retry_after


class ServerError(ClasserError, RuntimeError):
    error = "api_error"
    status = 500


class ModelNotInstalledError(ServerError, ImportError):
    """The model's weights are not on this machine; the message says how to install them."""


STATUS_BY_ERROR: dict[str, int] = {
    cls.error: cls.status
    for cls in (
        InvalidRequestError,
        AuthenticationError,
        InsufficientBalanceError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        UnprocessableInputError,
        RateLimitError,
        ServerError,
    )
}
