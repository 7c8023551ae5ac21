"""PDF and DOCX files -> one ``Document``: the text plus one rendered image per page.

Accepted forms are those of ``source.read_source``: bytes, base64, a data URL, a binary file
object, an (allowed) ``http(s)://`` URL and, under a policy with paths (``TRUSTED``), a path.
The kind is read from the bytes (``%PDF`` / a zip holding ``word/document.xml``), never from
a file name.

PDF (pymupdf): the text of every page, and every page rendered so that its longer side is
``PAGE_LONG_SIDE`` pixels (an A4 page comes out about 600x850). A scanned PDF has no
text layer: its ``text`` is ``""`` and it is classified through its page images.

DOCX (python-docx): the text of body paragraphs and tables in reading order, with the
headers before and the footers after. There is no office suite to render it, so the same
content is typeset as simple HTML (headings, paragraphs, bordered tables; 11 pt sans-serif,
A4, 2 cm margins) with pymupdf's ``Story`` into a PDF, whose pages are rendered like a
PDF's. The page images show the document's text and table structure, not its exact look
(fonts, colours and pictures are not reproduced), and its page count is that of this layout.

Page images carry ``info[PAGE_INFO_KEY] = True`` so the image model can letterbox them
(a page is not a photo: its whole height matters).

Limits (see ``limits``), each checked before the work it bounds: ``MAX_DOCUMENT_BYTES``; a
PDF's page count (``MAX_PAGES``, ``file_too_many_pages``) before any text or image is taken; a
DOCX's unpacked XML size (``MAX_DOCX_XML_BYTES``) before parsing, its paragraphs and tables
(``MAX_DOCX_BLOCKS``, ``file_too_many_blocks``) before styles are read or anything is typeset,
and its typeset pages; the rendered pages' pixels against the call's ``PixelBudget``.
Encrypted, corrupt and empty files raise ``UnprocessableInputError``.
"""

from __future__ import annotations

import html
import io
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError, UnprocessableInputError
from .limits import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCX_BLOCKS,
    MAX_DOCX_XML_BYTES,
    MAX_PAGES,
    PAGE_LONG_SIDE,
    PixelBudget,
)
from .policy import TRUSTED, InputPolicy
from .source import read_source

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MAX_DOCUMENT_BYTES", "MAX_DOCX_BLOCKS", "MAX_PAGES", "PAGE_INFO_KEY", "PAGE_LONG_SIDE", "Document",
    "document_text", "load_document",
]

PAGE_INFO_KEY = "classer_page"
"""Key set to ``True`` in a rendered page image's ``info``: it is a page, to be letterboxed."""

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_DOCX_CSS = """
body { font-family: sans-serif; font-size: 11pt; line-height: 1.25; }
h1 { font-size: 17pt; font-weight: bold; margin: 6pt 0; }
h2 { font-size: 14pt; font-weight: bold; margin: 6pt 0; }
h3 { font-size: 12pt; font-weight: bold; margin: 4pt 0; }
p { margin: 0 0 5pt 0; }
table { border-collapse: collapse; margin: 4pt 0 8pt 0; }
td { border: 0.5pt solid #555; padding: 2pt 4pt; vertical-align: top; font-size: 10pt; }
.hf { color: #555; font-size: 9pt; }
"""


@dataclass(frozen=True)
class Document:
    """A read document: its text, one RGB image per page, its kind and page count.

    Example:
        >>> import pymupdf
        >>> pdf = pymupdf.open(); _ = pdf.new_page().insert_text((72, 72), "INVOICE 42")
        >>> doc = load_document(pdf.tobytes())
        >>> doc.kind, doc.n_pages, len(doc.pages) == doc.n_pages, doc.text
        ('pdf', 1, True, 'INVOICE 42')
    """

    text: str
    pages: list[PILImage.Image] = field(repr=False)
    kind: str  # "pdf" or "docx"
    n_pages: int



def _damaged(kind: str, e: Exception) -> UnprocessableInputError:
    """The error for a file that opened but broke while being read."""
    return UnprocessableInputError("document_corrupt", f"The {kind.upper()} file is damaged: {e}", {"kind": kind})

def load_document(file: Any, *, policy: InputPolicy = TRUSTED, allow_urls: bool | None = None, render: bool = True,
                  budget: PixelBudget | None = None) -> Document:
    """Read a PDF or DOCX from bytes, base64, a data URL, a file object, an allowed URL or (policy allowing) a path.

    ``render=False`` skips the page images (``pages`` is then empty) when only text is needed.
    ``budget`` is charged with the rendered pages' pixels (share one across a request's items).

    Example:
        >>> import pymupdf
        >>> pdf = pymupdf.open(); _ = pdf.new_page(width=595, height=842).insert_text((72, 72), "INVOICE 42")
        >>> doc = load_document(pdf.tobytes())
        >>> doc.text[:7], doc.pages[0].size
        ('INVOICE', (601, 850))
        >>> from classer_local.inputs import REMOTE
        >>> load_document("/srv/invoice.pdf", policy=REMOTE)
        Traceback (most recent call last):
        ...
        classer_local.errors.InputNotAllowedError: ...
    """
    if isinstance(file, Document):
        return file
    data = _read(file, policy, allow_urls)
    budget = budget if budget is not None else PixelBudget()
    kind = _kind(data)
    if kind == "pdf":
        return _load_pdf(data, render, budget)
    return _load_docx(data, render, budget)


def document_text(file: Any, *, policy: InputPolicy = TRUSTED, allow_urls: bool | None = None,
                  max_chars: int | None = None) -> str:
    r"""The text ``load_document`` would give, without rendering or typesetting a page: what
    ``language="auto"`` reads to guess a document's language (``api.route``).

    ``max_chars``: stop reading PDF pages once that much text is in hand (a DOCX's text is read
    whole, as it costs little next to typesetting it). The same checks and typed errors as
    ``load_document`` (kind, encryption, page and block limits); a scan gives ``""``.

    Example:
        >>> import pymupdf
        >>> pdf = pymupdf.open()
        >>> for words in ("Rechnung Nr. 42", "Zahlbar bis 30.06."):
        ...     _ = pdf.new_page().insert_text((72, 72), words)
        >>> document_text(pdf.tobytes()), document_text(pdf.tobytes(), max_chars=5)
        ('Rechnung Nr. 42\n\nZahlbar bis 30.06.', 'Rechn')
    """
    if isinstance(file, Document):
        return file.text[:max_chars]
    data = _read(file, policy, allow_urls)
    if _kind(data) == "docx":
        return _docx_content(data)[0][:max_chars]
    kind = "pdf"
    _, doc = _open_pdf(data, kind)
    try:
        _check_page_count(doc.page_count, kind)
        texts: list[str] = []
        size = 0
        try:
            for page in doc:
                t = page.get_text("text").strip()
                if t:
                    texts.append(t)
                    size += len(t) + 2
                if max_chars is not None and size >= max_chars:
                    break
        except Exception as e:
            raise _damaged(kind, e) from None
    finally:
        doc.close()
    return "\n\n".join(texts)[:max_chars]


def _read(file: Any, policy: InputPolicy, allow_urls: bool | None) -> bytes:
    data = read_source(file, policy=policy.with_urls(allow_urls), max_bytes=MAX_DOCUMENT_BYTES, what="document")
    if not isinstance(data, bytes):
        raise InvalidRequestError("document_invalid", "A document must be a PDF or DOCX file, not an image object.",
                                  {"type": type(data).__name__})
    return data


def _kind(data: bytes) -> str:
    """``"pdf"`` or ``"docx"``; empty, legacy Office, encrypted and unknown files are typed errors."""
    if not data.strip():
        raise UnprocessableInputError("document_empty", "The document is empty (no bytes).", {"bytes": len(data)})
    kind = sniff_kind(data)
    if kind is not None:
        return kind
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise UnprocessableInputError(
                "document_encrypted", "The document is password-protected; remove the password and retry.",
                {"kind": "docx"},
            )
        raise UnprocessableInputError(
            "document_unsupported", "Legacy binary Office files (.doc, .xls) are not supported; save as DOCX or PDF.",
            {},
        )
    raise UnprocessableInputError(
        "document_unsupported", "The file is neither a PDF nor a DOCX document.", {"head": data[:8].hex()}
    )


def sniff_kind(data: bytes) -> str | None:
    """``"pdf"``, ``"docx"`` or ``None``, from the file's bytes.

    Example:
        >>> sniff_kind(b"%PDF-1.7 ...")
        'pdf'
    """
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if "word/document.xml" in zf.namelist():
                    return "docx"
        except (zipfile.BadZipFile, OSError, ValueError):
            return "docx" if b"word/" in data[:4096] else None
    return None


def _pymupdf():
    try:
        import pymupdf
    except ImportError:  # older releases only ship the "fitz" name
        try:
            import fitz as pymupdf  # type: ignore[no-redef]
        except ImportError as e:
            from ..errors import ModelNotInstalledError

            raise ModelNotInstalledError(
                "dependency_missing", "Reading PDFs needs pymupdf: pip install 'classer-local[vision]'.",
                {"package": "pymupdf"},
            ) from e
    try:
        pymupdf.TOOLS.mupdf_display_errors(False)
    except Exception:
        pass
    return pymupdf


def _open_pdf(data: bytes, kind: str = "pdf"):
    pymupdf = _pymupdf()
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as e:
        raise UnprocessableInputError(
            "document_corrupt", f"The {kind.upper()} file is corrupt or truncated and could not be opened.",
            {"kind": kind, "reason": str(e)[:200]},
        ) from None
    if doc.needs_pass and not doc.authenticate(""):
        doc.close()
        raise UnprocessableInputError(
            "document_encrypted", "The PDF is password-protected; remove the password and retry.", {"kind": kind}
        )
    return pymupdf, doc


def _check_pages(n: int, kind: str, at_least: bool = False) -> None:
    if n > MAX_PAGES:
        count = f"at least {n}" if at_least else str(n)
        raise InvalidRequestError(
            "file_too_many_pages", f"The document has {count} pages; at most {MAX_PAGES} are allowed.",
            {"pages": n, "limit": MAX_PAGES, "kind": kind},
        )


def _check_page_count(n: int, kind: str) -> None:
    if n == 0:
        raise UnprocessableInputError("document_empty", "The PDF has no pages.", {"kind": kind})
    _check_pages(n, kind)


def _zoom(page) -> float:
    rect = page.rect
    return min(max(PAGE_LONG_SIDE / max(rect.width, rect.height, 1.0), 0.1), 4.0)


def _page_pixels(pymupdf, page) -> int:
    """The pixels ``_render`` will make of a page, from its size alone (nothing drawn)."""
    zoom = _zoom(page)
    box = (page.rect * pymupdf.Matrix(zoom, zoom)).irect
    return int(box.width) * int(box.height)


def _render(pymupdf, page) -> tuple[PILImage.Image, bool]:
    """A page as an RGB image about PAGE_LONG_SIDE px high/wide, and whether it is blank."""
    from PIL import Image

    zoom = _zoom(page)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB)
    im = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
    im.info[PAGE_INFO_KEY] = True
    return im, bool(pix.is_unicolor)


def _load_pdf(data: bytes, render: bool, budget: PixelBudget, kind: str = "pdf", text: str | None = None) -> Document:
    pymupdf, doc = _open_pdf(data, kind)
    try:
        n = doc.page_count
        _check_page_count(n, kind)
        try:
            texts = [page.get_text("text") for page in doc] if text is None else None
            pages: list[PILImage.Image] = []
            blank = []
            if render or text is None:
                budget.spend(sum(_page_pixels(pymupdf, p) for p in doc), "document pages")
                for page in doc:
                    im, is_blank = _render(pymupdf, page)
                    blank.append(is_blank)
                    if render:
                        pages.append(im)
        except (UnprocessableInputError, InvalidRequestError):
            raise
        except Exception as e:
            raise _damaged(kind, e) from None
    finally:
        doc.close()
    if texts is not None:
        text = "\n\n".join(t.strip() for t in texts if t.strip())
    assert text is not None
    if not text.strip() and blank and all(blank):
        raise UnprocessableInputError(
            "document_empty", "The document has no text and its pages are blank.", {"kind": kind, "pages": n}
        )
    return Document(text=text, pages=pages, kind=kind, n_pages=n)


# --- DOCX ---------------------------------------------------------------------------------


def _check_docx_size(data: bytes) -> None:
    """Refuse a DOCX whose XML would unpack past ``MAX_DOCX_XML_BYTES`` (sizes from the zip directory;
    zipfile stops at the declared size, so a lying directory gets a CRC error, not a bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            size = sum(i.file_size for i in zf.infolist() if i.filename.lower().endswith((".xml", ".rels")))
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # python-docx reports the damage as document_corrupt
    if size > MAX_DOCX_XML_BYTES:
        raise InvalidRequestError(
            "file_too_large", f"The DOCX unpacks to {size:,} bytes of XML; the limit is {MAX_DOCX_XML_BYTES:,}.",
            {"bytes": size, "limit": MAX_DOCX_XML_BYTES, "kind": "docx"},
        )


def _count_blocks(d) -> int:
    """Paragraphs and tables in the body, headers and footers (cells included): lxml, no styles."""
    from docx.oxml.ns import qn

    tags = (qn("w:p"), qn("w:tbl"))
    n = 0
    for part in d.part.package.iter_parts():
        name = str(part.partname).lower()
        if name == "/word/document.xml" or name.startswith(("/word/header", "/word/footer")):
            element = getattr(part, "element", None)
            if element is not None:
                n += sum(1 for _ in element.iter(*tags))
    return n


def _load_docx(data: bytes, render: bool, budget: PixelBudget) -> Document:
    text, parts = _docx_content(data)
    pdf = _typeset("".join(parts))
    return _load_pdf(pdf, render, budget, kind="docx", text=text)


def _docx_content(data: bytes) -> tuple[str, list[str]]:
    """A DOCX's text (headers, body, footers) and the same content as HTML blocks to typeset."""
    _check_docx_size(data)
    try:
        import docx
    except ImportError as e:
        from ..errors import ModelNotInstalledError

        raise ModelNotInstalledError(
            "dependency_missing", "Reading DOCX needs python-docx: pip install 'classer-local[vision]'.",
            {"package": "python-docx"},
        ) from e
    try:
        d = docx.Document(io.BytesIO(data))
    except Exception as e:
        raise UnprocessableInputError(
            "document_corrupt", "The DOCX file is corrupt or truncated and could not be opened.",
            {"kind": "docx", "reason": str(e)[:200]},
        ) from None
    n_blocks = _count_blocks(d)
    if n_blocks > MAX_DOCX_BLOCKS:
        raise InvalidRequestError(
            "file_too_many_blocks",
            f"The DOCX has {n_blocks:,} paragraphs and tables; at most {MAX_DOCX_BLOCKS:,} are allowed.",
            {"blocks": n_blocks, "limit": MAX_DOCX_BLOCKS, "kind": "docx"},
        )
    # Style names once, by id: Paragraph.style looks each one up through the styles part (slow).
    styles = {s.style_id: s.name or "" for s in d.styles}

    lines: list[str] = []
    parts: list[str] = []
    seen_hf: set[str] = set()
    seen_parts: set[str] = set()

    def header_footer(which: str) -> None:
        for section in d.sections:
            for part in (getattr(section, which), getattr(section, f"first_page_{which}", None)):
                if part is None or part.is_linked_to_previous:
                    continue
                partname = str(part.part.partname)
                if partname in seen_parts:  # sections may share one header: read it once
                    continue
                seen_parts.add(partname)
                blocks = _blocks(part, styles)
                key = "\n".join(t for _, t, _ in blocks)
                if not key.strip() or key in seen_hf:
                    continue
                seen_hf.add(key)
                lines.extend(t for _, t, _ in blocks if t.strip())
                parts.append('<div class="hf">' + "".join(h for _, _, h in blocks) + "</div>")

    header_footer("header")
    for _, t, h in _blocks(d, styles):
        if t.strip():
            lines.append(t)
        parts.append(h)
    header_footer("footer")
    text = "\n".join(lines)
    if not text.strip():
        raise UnprocessableInputError("document_empty", "The DOCX document has no text.", {"kind": "docx"})
    return text, parts


def _blocks(container, styles: dict[str, str]) -> list[tuple[str, str, str]]:
    """(kind, text, html) for each paragraph/table of a body, header, footer or cell, in order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out = []
    for item in container.iter_inner_content():
        if isinstance(item, Paragraph):
            t = item.text.strip()
            style = styles.get(item._p.style or "", "")
            tag = "p"
            if style in ("Title", "Heading 1"):
                tag = "h1"
            elif style == "Heading 2":
                tag = "h2"
            elif style.startswith("Heading"):
                tag = "h3"
            if style.startswith("List") and t:
                t_html = "&#8226; " + html.escape(t)
            else:
                t_html = html.escape(t)
            out.append(("p", t, f"<{tag}>{t_html or '&#160;'}</{tag}>" if t else ""))
        elif isinstance(item, Table):
            rows_text, rows_html = [], []
            for row in item.rows:
                cells, cells_html, last = [], [], None
                for cell in row.cells:
                    if cell._tc is last:  # a merged cell repeats; keep it once
                        continue
                    last = cell._tc
                    inner = _blocks(cell, styles)
                    ct = " ".join(t for _, t, _ in inner if t.strip())
                    cells.append(ct)
                    cells_html.append("<td>" + ("".join(h for _, _, h in inner) or "&#160;") + "</td>")
                if any(c.strip() for c in cells):
                    rows_text.append(" | ".join(c for c in cells if c.strip()))
                rows_html.append("<tr>" + "".join(cells_html) + "</tr>")
            out.append(("table", "\n".join(rows_text), "<table>" + "".join(rows_html) + "</table>"))
    return out


def _typeset(body_html: str) -> bytes:
    """Lay simple HTML out on A4 pages (pymupdf Story); stop one page past the limit."""
    pymupdf = _pymupdf()
    story = pymupdf.Story(html=f"<body>{body_html}</body>", user_css=_DOCX_CSS)
    buf = io.BytesIO()
    writer = pymupdf.DocumentWriter(buf)
    mediabox = pymupdf.paper_rect("a4")
    where = mediabox + (57, 57, -57, -57)  # 2 cm margins
    more, n = 1, 0
    while more and n <= MAX_PAGES:
        dev = writer.begin_page(mediabox)
        more, _ = story.place(where)
        story.draw(dev)
        writer.end_page()
        n += 1
    writer.close()
    if more:
        _check_pages(n + 1, "docx", at_least=True)
    return buf.getvalue()
