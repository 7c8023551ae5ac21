"""Inputs other than text: images, and PDF/DOCX documents, read into checked, bounded form.

``load_images`` returns RGB ``PIL.Image`` objects; ``load_document`` returns a ``Document``
(text + one image per page). Pillow, pymupdf and python-docx are imported on first use.
"""

from __future__ import annotations

from .documents import MAX_PAGES, Document, load_document
from .images import MAX_IMAGES, MAX_PIXELS, load_image, load_images

__all__ = ["MAX_IMAGES", "MAX_PAGES", "MAX_PIXELS", "Document", "load_document", "load_image", "load_images"]
