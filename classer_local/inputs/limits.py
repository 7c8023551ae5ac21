"""Every limit on the work one input (or one request) may cause, checked before the expensive part.

Each constant has a docstring; ``LIMITS`` lists them with the error each one gives, so the
server's documentation can render the table from the code. ``PixelBudget`` is the one
stateful limit: the decoded pixels of all images of one call (or one request, when the
caller shares a budget between its items).

| limit | value | checked | error |
|---|---|---|---|
| ``MAX_IMAGES`` | 20 | count of images per input, before reading any | ``too_many_images`` (400) |
| ``MAX_IMAGE_BYTES`` | 32 MiB | size of one image's bytes, before decoding | ``file_too_large`` (400) |
| ``MAX_DECODE_PIXELS`` | 8192² ≈ 67 MP | one image's declared size, from its header | ``decompression_bomb`` (422) |
| ``MAX_REQUEST_PIXELS`` | 100 MP | sum of the pixels to decode over the images of one call, from the headers | ``pixel_budget_exceeded`` (400) |
| ``MAX_PIXELS`` | 2048² ≈ 4 MP | decoded images are shrunk to this (JPEG: decoded at reduced scale) | none: resized |
| ``MAX_DOCUMENT_BYTES`` | 50 MiB | size of a PDF/DOCX's bytes | ``file_too_large`` (400) |
| ``MAX_PAGES`` | 20 | PDF pages counted before text extraction and rendering; DOCX typeset pages | ``file_too_many_pages`` (400) |
| ``MAX_DOCX_BLOCKS`` | 5,000 | DOCX paragraphs + tables (body, headers, footers) counted before reading styles or typesetting | ``file_too_many_blocks`` (400) |
| ``MAX_DOCX_XML_BYTES`` | 32 MiB | a DOCX's XML parts, unpacked size from the zip directory, before parsing | ``file_too_large`` (400) |
| ``URL_TIMEOUT_S`` | 10 s | a URL fetch: DNS, connect and the whole body | ``url_not_allowed`` (422) |
| (URL body) | the input's byte limit | a URL's body, while it is read | ``url_not_allowed`` (422) |
"""

from __future__ import annotations

import threading

from ..errors import InvalidRequestError

__all__ = [
    "LIMITS",
    "MAX_DECODE_PIXELS",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCX_BLOCKS",
    "MAX_DOCX_XML_BYTES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_PAGES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "PAGE_LONG_SIDE",
    "URL_TIMEOUT_S",
    "PixelBudget",
]

MAX_IMAGES = 20
"""Images in one input (one item's ``image`` list); more -> ``too_many_images``."""
MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Bytes of one image (or one URL body fetched for an image); more -> ``file_too_large``."""
MAX_DECODE_PIXELS = 8192 * 8192
"""Pixels one image may declare in its header (67 MP); more -> ``decompression_bomb``, never decoded."""
MAX_REQUEST_PIXELS = 100_000_000
"""Pixels to decode over all images of one call (from the headers, after JPEG draft scaling),
checked before any is decoded; more -> ``pixel_budget_exceeded``. About 2 s of decoding on one
core (a 64 MP PNG alone takes 1.5-2 s to inflate); eleven 8000x8000 PNGs (704 MP) are refused in
milliseconds. JPEGs count at their draft size, so five 24 MP photos cost 30 MP."""
MAX_PIXELS = 2048 * 2048
"""Decoded images are shrunk to at most this many pixels (4 MP), keeping their aspect ratio.
A JPEG larger than this is decoded at 1/2, 1/4 or 1/8 scale straight away (``Image.draft``)."""
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
"""Bytes of one PDF or DOCX; more -> ``file_too_large``."""
MAX_PAGES = 20
"""Pages of one document: a PDF's are counted before anything is extracted or rendered; a
DOCX's typesetting stops one page past it. More -> ``file_too_many_pages``."""
MAX_DOCX_BLOCKS = 5_000
"""Paragraphs + tables of one DOCX (body, headers and footers, table cells included), counted
in the parsed XML before styles are read or anything is typeset; more -> ``file_too_many_blocks``.
``MAX_PAGES`` typeset pages hold about 1,000 one-line paragraphs or 4,000 table cells, so a
longer DOCX would be refused for its pages anyway, after seconds of work; reading 5,000 blocks
takes under a second on one core."""
MAX_DOCX_XML_BYTES = 32 * 1024 * 1024
"""Unpacked bytes of a DOCX's XML parts, read from the zip directory before parsing (zip bombs);
more -> ``file_too_large``."""
PAGE_LONG_SIDE = 850
"""Pixels of a rendered page's longer side (about 72 dpi for A4/Letter)."""
URL_TIMEOUT_S = 10.0
"""Seconds for one URL fetch, all of it: name lookup, connect, headers and body."""

LIMITS: tuple[tuple[str, object, str, str], ...] = (
    ("MAX_IMAGES", MAX_IMAGES, "too_many_images", "images per input"),
    ("MAX_IMAGE_BYTES", MAX_IMAGE_BYTES, "file_too_large", "bytes per image"),
    ("MAX_DECODE_PIXELS", MAX_DECODE_PIXELS, "decompression_bomb", "declared pixels per image"),
    ("MAX_REQUEST_PIXELS", MAX_REQUEST_PIXELS, "pixel_budget_exceeded", "pixels to decode per call"),
    ("MAX_PIXELS", MAX_PIXELS, "", "images are resized down to this many pixels"),
    ("MAX_DOCUMENT_BYTES", MAX_DOCUMENT_BYTES, "file_too_large", "bytes per PDF/DOCX"),
    ("MAX_PAGES", MAX_PAGES, "file_too_many_pages", "pages per document"),
    ("MAX_DOCX_BLOCKS", MAX_DOCX_BLOCKS, "file_too_many_blocks", "paragraphs + tables per DOCX"),
    ("MAX_DOCX_XML_BYTES", MAX_DOCX_XML_BYTES, "file_too_large", "unpacked XML bytes per DOCX"),
    ("URL_TIMEOUT_S", URL_TIMEOUT_S, "url_not_allowed", "seconds per URL fetch"),
)
"""(name, value, error code, what it bounds) for every limit above: the table for the docs."""


class PixelBudget:
    """The pixels left to decode in one call or request; shared by its images and documents.

    ``load_images``/``load_document`` make a fresh one per call when none is passed; a caller
    scoring a batch passes one budget to every item so the whole request is bounded.

    Example:
        >>> b = PixelBudget(1000)
        >>> b.spend(600, "images"); b.left
        400
        >>> b.spend(600, "images")
        Traceback (most recent call last):
        ...
        classer_local.errors.InvalidRequestError: ...
    """

    def __init__(self, limit: int = MAX_REQUEST_PIXELS) -> None:
        self.limit = int(limit)
        self.used = 0
        self._lock = threading.Lock()  # items of one request may be read on several threads

    @property
    def left(self) -> int:
        return self.limit - self.used

    def spend(self, pixels: int, what: str = "images") -> None:
        """Take ``pixels`` from the budget, or refuse (nothing taken) when they do not fit."""
        with self._lock:
            if self.used + pixels > self.limit:
                raise InvalidRequestError(
                    "pixel_budget_exceeded",
                    f"The {what} of this request hold {self.used + pixels:,} pixels to decode; "
                    f"the limit is {self.limit:,} per request. Send smaller images or fewer at once.",
                    {"pixels": self.used + pixels, "limit": self.limit},
                )
            self.used += pixels
