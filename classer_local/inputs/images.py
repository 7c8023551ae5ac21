"""Images in every form a caller may hold -> RGB ``PIL.Image`` objects, checked and bounded.

Accepted forms (one, or a list of up to ``MAX_IMAGES``): a path (``str``/``Path``), raw
``bytes``, a base64 string, a ``data:`` URL, a ``PIL.Image.Image``, a binary file object,
or an ``http(s)://`` URL. URLs are fetched only when allowed (``allow_urls=True`` or
``CLASSER_ALLOW_URLS=1``), with a timeout and a size cap.

Every image has its EXIF orientation applied, is flattened to RGB (transparency onto
white) and is shrunk to at most ``MAX_PIXELS`` keeping its aspect ratio. Anything larger
than ``MAX_DECODE_PIXELS`` is refused before it is decoded (decompression bombs).

``read_source`` (bytes from any of those forms) is shared with ``documents``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import InvalidRequestError, UnprocessableInputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MAX_DECODE_PIXELS",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "URL_TIMEOUT_S",
    "load_image",
    "load_images",
    "read_source",
]

MAX_IMAGES = 20
MAX_PIXELS = 2048 * 2048  # 4 MP: larger images are resized down, keeping aspect
MAX_DECODE_PIXELS = 8192 * 8192  # 67 MP: larger images are refused unread (decompression bombs)
MAX_IMAGE_BYTES = 32 * 1024 * 1024
URL_TIMEOUT_S = 10.0

# A string this long is never a path; base64 alphabet (standard and URL-safe) plus padding.
_MAX_PATH_CHARS = 4096
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")


def _urls_allowed(allow_urls: bool | None) -> bool:
    return config.env_flag("CLASSER_ALLOW_URLS", False) if allow_urls is None else bool(allow_urls)


def fetch_url(url: str, *, allow_urls: bool | None = None, max_bytes: int = MAX_IMAGE_BYTES,
              timeout: float = URL_TIMEOUT_S) -> bytes:
    """GET ``url`` (http/https only) with a timeout and a size cap; off unless allowed.

    Example:
        >>> fetch_url("https://example.com/cat.jpg", allow_urls=False)
        Traceback (most recent call last):
        ...
        classer_local.errors.InvalidRequestError: ...
    """
    if not _urls_allowed(allow_urls):
        raise InvalidRequestError(
            "url_fetch_disabled",
            "Fetching URLs is disabled. Pass the file's bytes or base64 instead, or allow URL "
            "fetching with CLASSER_ALLOW_URLS=1 (or allow_urls=True).",
            {"url": url[:200]},
        )
    import urllib.error
    import urllib.request

    if not url.lower().startswith(("http://", "https://")):
        raise InvalidRequestError("url_invalid", "Only http:// and https:// URLs can be fetched.",
                                  {"url": url[:200]})
    req = urllib.request.Request(url, headers={"User-Agent": "classer-local"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(int(declared), max_bytes, url)
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as e:
        raise UnprocessableInputError("url_fetch_failed", f"Fetching the URL failed with HTTP {e.code}.",
                                      {"url": url[:200], "status": e.code}) from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise UnprocessableInputError("url_fetch_failed", f"Fetching the URL failed: {e}.",
                                      {"url": url[:200]}) from None
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes, url)
    return data


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


def read_source(obj: Any, *, allow_urls: bool | None = None, max_bytes: int = MAX_IMAGE_BYTES,
                what: str = "image") -> bytes:
    """The bytes behind a path, bytes, base64 string, data URL, file object or (allowed) URL.

    A string is a data URL if it starts with ``data:``, a URL if it starts with ``http(s)://``,
    a path if a file of that name exists, else base64 if it decodes as such; a short string
    that is none of these is reported as a missing file.

    Example:
        >>> read_source("aGVsbG8gd29ybGQ=")
        b'hello world'
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
    elif isinstance(obj, Path):
        data = _read_path(obj, max_bytes, what)
    elif isinstance(obj, str):
        s = obj.strip()
        low = s[:16].lower()
        if low.startswith("data:"):
            header, sep, payload = s.partition(",")
            if not sep:
                raise InvalidRequestError(f"{what}_invalid", f"Malformed data URL for the {what}.", {})
            if ";base64" in header.lower():
                decoded = _decode_base64(payload)
                if decoded is None:
                    raise InvalidRequestError(f"{what}_invalid", f"The {what} data URL is not valid base64.", {})
                data = decoded
            else:
                from urllib.parse import unquote_to_bytes

                data = unquote_to_bytes(payload)
        elif low.startswith(("http://", "https://")):
            data = fetch_url(s, allow_urls=allow_urls, max_bytes=max_bytes)
        elif len(s) < _MAX_PATH_CHARS and "\n" not in s and _is_file(s):
            data = _read_path(Path(s), max_bytes, what)
        else:
            decoded = _decode_base64(s)
            if decoded is None:
                looks_like_path = len(s) < _MAX_PATH_CHARS and ("/" in s or "\\" in s or "." in s[-6:])
                if looks_like_path:
                    raise InvalidRequestError("file_not_found", f"No such file: {s[:200]!r}.", {"path": s[:200]})
                raise InvalidRequestError(
                    f"{what}_invalid",
                    f"The {what} string is neither an existing path, a URL, a data URL nor base64.",
                    {"value": s[:80]},
                )
            data = decoded
    elif hasattr(obj, "read"):
        data = obj.read(max_bytes + 1)
        if isinstance(data, str):
            raise InvalidRequestError(f"{what}_invalid", "Open the file in binary mode ('rb').", {})
    else:
        raise InvalidRequestError(
            f"{what}_invalid",
            f"Unsupported {what} type {type(obj).__name__}: pass a path, bytes, base64, data URL or URL.",
            {"type": type(obj).__name__},
        )
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return data


def _is_file(s: str) -> bool:
    try:
        return os.path.isfile(os.path.expanduser(s))
    except (OSError, ValueError):
        return False


def _read_path(path: Path, max_bytes: int, what: str) -> bytes:
    path = path.expanduser()
    if not path.is_file():
        raise InvalidRequestError("file_not_found", f"No such file: {str(path)[:200]!r}.", {"path": str(path)})
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(size, max_bytes, str(path))
    return path.read_bytes()


def _bomb(w: int, h: int, index: int) -> UnprocessableInputError:
    return UnprocessableInputError(
        "decompression_bomb",
        f"Image {index} declares {w}x{h} pixels, over the {MAX_DECODE_PIXELS:,}-pixel limit; it was not decoded.",
        {"index": index, "width": w, "height": h, "limit": MAX_DECODE_PIXELS},
    )


def _decode(data: bytes, index: int) -> PILImage.Image:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UnprocessableInputError("image_empty", f"Image {index} is empty (0 bytes).", {"index": index})
    w = h = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > MAX_DECODE_PIXELS:
                raise _bomb(w, h, index)
            if im.format == "JPEG" and w * h > MAX_PIXELS:
                # decode at a reduced scale straight away (libjpeg DCT scaling): far cheaper
                scale = math.sqrt(MAX_PIXELS / (w * h))
                im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(w, h, index) from None
    except UnidentifiedImageError:
        raise UnprocessableInputError(
            "image_unreadable", f"Image {index} is not an image format that can be read.", {"index": index}
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        truncated = "truncated" in str(e).lower() or "broken data stream" in str(e).lower()
        code = "image_truncated" if truncated else "image_unreadable"
        raise UnprocessableInputError(code, f"Image {index} could not be decoded: {e}.", {"index": index}) from None
    return im


def _normalise(im: PILImage.Image) -> PILImage.Image:
    from PIL import Image, ImageOps

    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        im = bg
    elif im.mode != "RGB":
        im = im.convert("RGB")
    w, h = im.size
    if w * h > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (w * h))
        size = (max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))
        im = im.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return im


def load_image(image: Any, *, allow_urls: bool | None = None, index: int = 0) -> PILImage.Image:
    """One image-like value -> an RGB ``PIL.Image`` (EXIF-rotated, at most 4 MP).

    Example:
        >>> from PIL import Image
        >>> load_image(Image.new("RGBA", (4000, 3000))).size
        (2364, 1773)
    """
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - pillow is a vision extra
        from ..errors import ModelNotInstalledError

        raise ModelNotInstalledError("dependency_missing", "Images need Pillow: pip install 'classer-local[vision]'.",
                                     {"package": "pillow"}) from e
    if isinstance(image, Image.Image):
        w, h = image.size
        if w * h > MAX_DECODE_PIXELS:
            raise _bomb(w, h, index)
        return _normalise(image)
    data = read_source(image, allow_urls=allow_urls, max_bytes=MAX_IMAGE_BYTES, what="image")
    return _normalise(_decode(data, index))


def load_images(image: Any, *, allow_urls: bool | None = None) -> list[PILImage.Image]:
    """One image-like value, or a list/tuple of up to ``MAX_IMAGES``, -> a list of RGB images.

    Example:
        >>> from PIL import Image
        >>> [im.mode for im in load_images([Image.new("L", (8, 8)), Image.new("P", (8, 8))])]
        ['RGB', 'RGB']
    """
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    if not items:
        raise InvalidRequestError("images_empty", "At least one image is required.", {})
    if len(items) > MAX_IMAGES:
        raise InvalidRequestError(
            "too_many_images", f"{len(items)} images were sent; at most {MAX_IMAGES} are allowed per input.",
            {"count": len(items), "limit": MAX_IMAGES},
        )
    return [load_image(x, allow_urls=allow_urls, index=i) for i, x in enumerate(items)]
