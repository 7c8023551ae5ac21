"""The one reader of inputs: any form a caller may hold -> bytes (or a PIL image), under a policy.

``read_source`` accepts ``bytes``, a base64 string, a ``data:`` URL, an ``http(s)://`` URL
(fetched only when the policy allows URLs, see ``urls``), a binary file object, a
``PIL.Image`` (returned as it is) and, only when ``policy.allow_paths``, a local path: a
``str`` (``~`` expanded, surrounding whitespace ignored), a ``Path`` or a ``file:`` URL.

Under a policy without paths (``REMOTE``) a string that is not base64, a data URL or an
http(s) URL is refused with ``path_not_allowed`` before anything on this machine is looked
at: the answer is the same for ``/etc/passwd``, `` ~/.bashrc``, ``file:///x``, ``../x`` and
for a name that exists nowhere. A string starting with ``/`` is base64 only as a JPEG
(``/9j/``); any other such string is taken for a path, so ``/etc/passwd`` is never decoded
as base64 either.

``looks_like_file`` answers "is this example string a file rather than a text?" the same
way for every caller; under ``REMOTE`` it never touches the disk.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputNotAllowedError, InvalidRequestError
from .limits import MAX_IMAGE_BYTES
from .policy import TRUSTED, InputPolicy

__all__ = ["FILE_SUFFIXES", "looks_like_file", "read_source"]

FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pdf", ".docx")
"""Endings of the file names (and URL paths) an example string may name; other strings are texts."""

# A string this long is never a path; base64 alphabet (standard and URL-safe) plus padding.
_MAX_PATH_CHARS = 4096
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
# Spellings that can only be a path (never base64, data: or http(s)): checked before decoding.
_DATA_URL = re.compile(r"^data:[^,\s]*,", re.IGNORECASE)
_PATH_START = re.compile(r"^(~|\.{1,2}([/\\]|$)|[A-Za-z]:[/\\]|\\\\|file:|/(?!9j/))", re.IGNORECASE)


def _path_not_allowed(what: str) -> InputNotAllowedError:
    # The same answer whatever the string names: nothing here reveals what exists on this machine.
    return InputNotAllowedError(
        "path_not_allowed",
        f"The {what} must be base64, a data: URL or an http(s):// URL; other strings (such as paths) "
        "are never read as files here.",
        {"field": what},
    )


def _too_large(size: int, limit: int, what: str = "") -> InvalidRequestError:
    return InvalidRequestError(
        "file_too_large", f"The input is {size:,} bytes; the limit is {limit:,} bytes.",
        {"bytes": size, "limit": limit, **({"source": what[:200]} if what else {})},
    )


def _decode_base64(text: str) -> bytes | None:
    compact = "".join(text.split())
    if len(compact) < 8 or not _BASE64_RE.match(compact):
        return None
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _data_url(s: str, what: str) -> bytes:
    header, sep, payload = s.partition(",")
    if not sep:
        raise InvalidRequestError(f"{what}_invalid", f"Malformed data URL for the {what}.", {})
    if ";base64" in header.lower():
        decoded = _decode_base64(payload)
        if decoded is None:
            raise InvalidRequestError(f"{what}_invalid", f"The {what} data URL is not valid base64.", {})
        return decoded
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def _file_url_path(s: str) -> Path:
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(s)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequestError("file_not_found", "file: URLs must name a file on this machine.", {"path": s[:200]})
    return Path(url2pathname(parts.path))


def _read_path(path: Path, max_bytes: int) -> bytes:
    path = path.expanduser()
    if not path.is_file():
        raise InvalidRequestError("file_not_found", f"No such file: {str(path)[:200]!r}.", {"path": str(path)[:200]})
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(size, max_bytes, str(path))
    with open(path, "rb") as fh:  # capped: a size of 0 (/proc files) says nothing
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes, str(path))
    return data


def _is_file(s: str) -> bool:
    try:
        return os.path.isfile(os.path.expanduser(s))
    except (OSError, ValueError):
        return False


def _read_string(s: str, policy: InputPolicy, max_bytes: int, what: str) -> bytes:
    if not s:
        raise InvalidRequestError(f"{what}_invalid", f"The {what} string is empty.", {})
    low = s[:16].lower()
    if low.startswith("data:"):
        return _data_url(s, what)
    if low.startswith(("http://", "https://")):
        from .urls import fetch_url

        return fetch_url(s, policy=policy, max_bytes=max_bytes)
    if not policy.allow_paths:
        # Decided from the spelling alone: the filesystem is never consulted.
        decoded = None if _PATH_START.match(s) else _decode_base64(s)
        if decoded is None:
            raise _path_not_allowed(what)
        return decoded
    if low.startswith("file:"):
        return _read_path(_file_url_path(s), max_bytes)
    if len(s) < _MAX_PATH_CHARS and "\n" not in s and "\0" not in s and _is_file(s):
        return _read_path(Path(s), max_bytes)
    decoded = None if _PATH_START.match(s) else _decode_base64(s)
    if decoded is not None:
        return decoded
    if len(s) < _MAX_PATH_CHARS and ("/" in s or "\\" in s or "." in s[-6:] or _PATH_START.match(s)):
        raise InvalidRequestError("file_not_found", f"No such file: {s[:200]!r}.", {"path": s[:200]})
    raise InvalidRequestError(
        f"{what}_invalid",
        f"The {what} string is neither an existing path, a URL, a data URL nor base64.",
        {"value": s[:80]},
    )


def read_source(
    value: Any,
    *,
    policy: InputPolicy,
    max_bytes: int = MAX_IMAGE_BYTES,
    what: str = "image",
) -> Any:
    """The bytes behind an input (a ``PIL.Image`` is returned as it is), read under ``policy``.

    Errors: ``path_not_allowed`` (a path, or any string that is not base64/data:/http(s), when
    the policy has no paths), ``file_not_found``, ``file_too_large``, ``url_fetch_disabled``,
    ``url_not_allowed``, ``{what}_invalid``.

    Example:
        >>> from classer_local.inputs import REMOTE
        >>> read_source("aGVsbG8gd29ybGQ=", policy=REMOTE)
        b'hello world'
        >>> read_source(" ~/.bashrc", policy=REMOTE)
        Traceback (most recent call last):
        ...
        classer_local.errors.InputNotAllowedError: ...
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        data = _read_string(value.strip(), policy, max_bytes, what)
    elif isinstance(value, os.PathLike):
        if not policy.allow_paths:
            raise _path_not_allowed(what)
        data = _read_path(Path(os.fspath(value)), max_bytes)
    elif _is_pil(value):
        return value
    elif hasattr(value, "read"):
        data = value.read(max_bytes + 1)
        if isinstance(data, str):
            raise InvalidRequestError(f"{what}_invalid", "Open the file in binary mode ('rb').", {})
    else:
        raise InvalidRequestError(
            f"{what}_invalid",
            f"Unsupported {what} type {type(value).__name__}: pass a path, bytes, base64, data URL or URL.",
            {"type": type(value).__name__},
        )
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return data


def _is_pil(value: Any) -> bool:
    import sys

    pil = sys.modules.get("PIL.Image")  # never import Pillow just to ask
    return pil is not None and isinstance(value, pil.Image)


def looks_like_file(value: Any, policy: InputPolicy = TRUSTED) -> bool:
    """Whether an example (or input) is a file/image rather than a text.

    Non-strings (bytes, paths, images, documents, file objects) are files. A string is a file
    if it is a ``data:`` URL, or an ``http(s)://`` URL whose path ends in a known suffix
    (``FILE_SUFFIXES``); and, only when the policy allows paths, a ``file:`` URL or the name of
    an existing file with a known suffix. Under ``REMOTE`` the disk is never consulted.

    Example:
        >>> from classer_local.inputs import REMOTE
        >>> looks_like_file("data:image/png;base64,iVBORw0KGgo=", REMOTE), looks_like_file("/etc/passwd", REMOTE)
        (True, False)
    """
    if not isinstance(value, str):
        return value is not None
    s = value.strip()
    if _DATA_URL.match(s):
        return True
    if not s or len(s) > _MAX_PATH_CHARS or "\n" in s:
        return False
    low = s.lower()
    if low.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        if any(c.isspace() for c in s):
            return False
        try:
            return urlsplit(s).path.lower().endswith(FILE_SUFFIXES)
        except ValueError:
            return False
    if not policy.allow_paths:
        return False
    if low.startswith("file:"):
        return not any(c.isspace() for c in s[:8])
    return low.endswith(FILE_SUFFIXES) and _is_file(s)
