"""Images in every form a caller may hold -> RGB ``PIL.Image`` objects, checked and bounded.

Accepted forms (one, or a list of up to ``MAX_IMAGES``): raw ``bytes``, a base64 string, a
``data:`` URL, a ``PIL.Image.Image``, a binary file object, an ``http(s)://`` URL (fetched only
when the policy allows URLs, see ``urls``) and, under a policy with paths (``TRUSTED``, the
default), a path (``str``/``Path``/``file:`` URL). ``read_source`` in ``source`` reads them (``urls.fetch_url`` fetches).

Work is bounded before it is done: every image's size is read from its header first; one
declaring more than ``MAX_DECODE_PIXELS`` is refused (``decompression_bomb``, with its real
size), and the pixels to decode over all images of the call must fit a ``PixelBudget``
(``MAX_REQUEST_PIXELS``) before any is decoded. A JPEG larger than ``MAX_PIXELS`` is decoded
at 1/2, 1/4 or 1/8 scale (``Image.draft``), a JPEG 2000 at a reduced resolution level, and
counts at that size.

Every image then has its EXIF orientation applied, is flattened to RGB (transparency onto
white) and is shrunk to at most ``MAX_PIXELS`` keeping its aspect ratio.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError, UnprocessableInputError
from .limits import MAX_DECODE_PIXELS, MAX_IMAGE_BYTES, MAX_IMAGES, MAX_PIXELS, URL_TIMEOUT_S, PixelBudget
from .policy import TRUSTED, InputPolicy
from .source import read_source

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MAX_DECODE_PIXELS",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "URL_TIMEOUT_S",
    "image_pixels",
    "load_image",
    "load_images",
    "read_source",
]


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - pillow is a vision extra
        from ..errors import ModelNotInstalledError

        raise ModelNotInstalledError("dependency_missing", "Images need Pillow: pip install 'classer-local[vision]'.",
                                     {"package": "pillow"}) from e
    return Image


def _bomb(index: int, size: tuple[int, int] | None, pixels: int | None = None) -> UnprocessableInputError:
    if size is not None:
        w, h = size
        what = f"is {w}x{h} ({w * h:,} pixels)"
        pixels = w * h
    else:
        what = f"declares {pixels:,} pixels" if pixels else "declares more pixels than can be counted"
    return UnprocessableInputError(
        "decompression_bomb",
        f"Image {index} {what}, over the {MAX_DECODE_PIXELS:,}-pixel limit; it was not decoded.",
        {"index": index, **({"width": size[0], "height": size[1]} if size else {}),
         "pixels": pixels, "limit": MAX_DECODE_PIXELS},
    )


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """An image's size from its header alone, past Pillow's own bomb check (for the message)."""
    Image = _pil()
    Image.init()
    prefix = data[:16]
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None:
                ok = accept(prefix)
                if not ok or isinstance(ok, str):
                    continue
            im = factory(io.BytesIO(data), "")
            return tuple(im.size)  # type: ignore[return-value]
        except Exception:  # noqa: BLE001, S112 - a plugin that cannot read it is not the format
            continue
    return None


def _open(data: bytes, index: int) -> tuple[PILImage.Image, int]:
    """The image, opened from its header only (nothing decoded), and the pixels decoding will cost."""
    Image = _pil()
    from PIL import UnidentifiedImageError

    if not data:
        raise UnprocessableInputError("image_empty", f"Image {index} is empty (0 bytes).", {"index": index})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        raise _bomb(index, _declared_size(data), int(found.group(1)) if found else None) from None
    except UnidentifiedImageError:
        raise UnprocessableInputError(
            "image_unreadable", f"Image {index} is not an image format that can be read.", {"index": index}
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise _decode_error(e, index) from None
    w, h = im.size
    if w * h > MAX_DECODE_PIXELS:
        raise _bomb(index, (w, h))
    cost = w * h
    if cost > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / cost)
        if im.format == "JPEG":
            # libjpeg DCT scaling: decodes at 1/2, 1/4 or 1/8 of the size, never below the request
            im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            cost = im.size[0] * im.size[1]
        elif im.format == "JPEG2000":
            level = max(0, math.floor(math.log2(1 / scale)))
            if level:
                im.reduce = level  # type: ignore[assignment,method-assign]  # decode that resolution level
                cost = -(-w >> level) * -(-h >> level)
    return im, cost


def _decode_error(e: Exception, index: int) -> UnprocessableInputError:
    truncated = "truncated" in str(e).lower() or "broken data stream" in str(e).lower()
    code = "image_truncated" if truncated else "image_unreadable"
    return UnprocessableInputError(code, f"Image {index} could not be decoded: {e}.", {"index": index})


def _decode(im: PILImage.Image, index: int) -> PILImage.Image:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise _decode_error(e, index) from None
    return im


def _normalise(im: PILImage.Image) -> PILImage.Image:
    Image = _pil()
    from PIL import ImageOps

    w, h = im.size
    ratio = math.sqrt(w * h / MAX_PIXELS)
    if ratio >= 3 and im.mode in ("RGB", "RGBA", "L", "LA"):
        # a cheap box reduction first (to about 1.5-3x the target side), so rotation, conversion
        # and the bicubic resize below work on a picture a quarter the size or less
        im = im.reduce(int(ratio // 1.5))
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:  # noqa: BLE001, S110 - a broken EXIF block must not lose the picture
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


def _prepare(image: Any, policy: InputPolicy, index: int) -> tuple[PILImage.Image, int]:
    """(opened image, pixels to decode) for one image-like value; PIL images cost nothing here."""
    Image = _pil()
    value = read_source(image, policy=policy, max_bytes=MAX_IMAGE_BYTES, what="image")
    if isinstance(value, Image.Image):
        w, h = value.size
        if w * h > MAX_DECODE_PIXELS:
            raise _bomb(index, (w, h))
        return value, 0
    return _open(value, index)


def load_image(image: Any, *, policy: InputPolicy = TRUSTED, allow_urls: bool | None = None, index: int = 0,
               budget: PixelBudget | None = None) -> PILImage.Image:
    """One image-like value -> an RGB ``PIL.Image`` (EXIF-rotated, at most 4 MP).

    Example:
        >>> from PIL import Image
        >>> load_image(Image.new("RGBA", (4000, 3000))).size
        (2364, 1773)
    """
    return _load_all([image], policy.with_urls(allow_urls), budget, index)[0]


def load_images(image: Any, *, policy: InputPolicy = TRUSTED, allow_urls: bool | None = None,
                budget: PixelBudget | None = None) -> list[PILImage.Image]:
    """One image-like value, or a list/tuple of up to ``MAX_IMAGES``, -> a list of RGB images.

    ``policy`` says whether strings may be paths (``TRUSTED``) or not (``REMOTE``);
    ``allow_urls`` (kept from before the policy) switches URL fetching on or off for this call.
    ``budget`` bounds the pixels decoded over several calls (one request); by default each
    call has ``MAX_REQUEST_PIXELS``. All images are opened and counted before any is decoded.

    Example:
        >>> from PIL import Image
        >>> [im.mode for im in load_images([Image.new("L", (8, 8)), Image.new("P", (8, 8))])]
        ['RGB', 'RGB']
    """
    return _load_all(_listed(image), policy.with_urls(allow_urls), budget, 0)


def image_pixels(image: Any, *, policy: InputPolicy = TRUSTED, allow_urls: bool | None = None) -> int:
    """The pixels ``load_images`` would decode for ``image`` (one value or a list), from the headers
    alone: nothing is decoded. The same checks apply (count, bytes, ``decompression_bomb``), so a
    server can total a whole request's images and refuse it before decoding any of them.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (640, 480)).save(buf, "PNG")
        >>> image_pixels([buf.getvalue(), buf.getvalue()])
        614400
    """
    return sum(cost for _, cost in _open_all(_listed(image), policy.with_urls(allow_urls), 0))


def _listed(image: Any) -> list[Any]:
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    if not items:
        raise InvalidRequestError("images_empty", "At least one image is required.", {})
    if len(items) > MAX_IMAGES:
        raise InvalidRequestError(
            "too_many_images", f"{len(items)} images were sent; at most {MAX_IMAGES} are allowed per input.",
            {"count": len(items), "limit": MAX_IMAGES},
        )
    return items


def _open_all(items: list[Any], policy: InputPolicy, first: int) -> list[tuple[PILImage.Image, int]]:
    return [_prepare(x, policy, first + i) for i, x in enumerate(items)]


def _load_all(items: list[Any], policy: InputPolicy, budget: PixelBudget | None, first: int) -> list[PILImage.Image]:
    """Open every image (headers only), charge the budget for all of them, then decode."""
    opened = _open_all(items, policy, first)
    (budget if budget is not None else PixelBudget()).spend(sum(cost for _, cost in opened), "images")
    return [_normalise(_decode(im, first + i)) for i, (im, _) in enumerate(opened)]
