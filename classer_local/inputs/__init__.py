"""Inputs other than text: images, and PDF/DOCX documents, read into checked, bounded form.

One policy decides what an input may point at (``InputPolicy``: ``TRUSTED`` in-process callers may
name local files, ``REMOTE`` callers never can; URLs are off unless allowed, and then only to
public or allow-listed hosts). One reader applies it (``read_source``), and one test says whether
an example string is a file (``looks_like_file``). ``load_images`` returns RGB ``PIL.Image``
objects; ``load_document`` returns a ``Document`` (text + one image per page), ``document_text``
only its text, nothing rendered. Every limit is in ``limits`` (``LIMITS`` is the table). Pillow,
pymupdf and python-docx are imported on first use.
"""

from __future__ import annotations

from .documents import MAX_PAGES, Document, document_text, load_document
from .images import MAX_IMAGES, MAX_PIXELS, image_pixels, load_image, load_images
from .limits import LIMITS, MAX_DECODE_PIXELS, MAX_DOCX_BLOCKS, MAX_REQUEST_PIXELS, PixelBudget
from .policy import REMOTE, TRUSTED, InputPolicy
from .source import looks_like_file, read_source

__all__ = [
    "LIMITS",
    "MAX_DECODE_PIXELS",
    "MAX_DOCX_BLOCKS",
    "MAX_IMAGES",
    "MAX_PAGES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "REMOTE",
    "TRUSTED",
    "Document",
    "InputPolicy",
    "PixelBudget",
    "document_text",
    "image_pixels",
    "load_document",
    "load_image",
    "load_images",
    "looks_like_file",
    "read_source",
]
