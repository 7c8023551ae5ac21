"""OCR (the optional ``ocr`` extra): real rapidocr-onnxruntime models on real page renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from classer_local import ocr

pytestmark = pytest.mark.skipif(not ocr.available(), reason="the ocr extra (rapidocr-onnxruntime) is not installed")

DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "evaldata" / "documents" / "files"


def _scan(lines: list[str]):
    """A one-page PDF with these lines, rendered to an image: a scan, with no text layer left."""
    import pymupdf

    from classer_local.inputs import load_document

    pdf = pymupdf.open()
    page = pdf.new_page(width=595, height=842)
    for k, line in enumerate(lines):
        page.insert_text((72, 90 + 28 * k), line, fontsize=16)
    doc = load_document(pdf.tobytes())
    return doc.pages[0]


def test_read_text_in_reading_order() -> None:
    page = _scan(["INVOICE 2024-117", "Total due: 1,250.00 EUR", "Payment within 30 days"])
    text, seconds, tokens = ocr.read_text(page)
    lines = text.splitlines()
    assert len(lines) == 3, text
    assert "INVOICE" in lines[0] and "117" in lines[0]
    assert "1,250.00" in lines[1].replace(" ", "") or "1,250.00" in lines[1]
    assert "Payment" in lines[2]
    assert seconds > 0 and tokens == len(text.split())


def test_blank_image_reads_nothing() -> None:
    from PIL import Image

    text, _, tokens = ocr.read_text(Image.new("RGB", (300, 200), "white"))
    assert text == "" and tokens == 0


def test_read_pages_stops_at_max_pages() -> None:
    page = _scan(["Page text here"])
    text, _, _ = ocr.read_pages([page, page, page], max_pages=2)
    assert text.count("Page") == 2 and "\n\n" in text


@pytest.mark.skipif(not (DOCS / "doc22.pdf").exists(), reason="evaldata/documents not present")
def test_real_letter_page_read_back() -> None:
    """A real letter rendered at the page size the classifier uses (about 72 dpi) reads back its words."""
    from classer_local.inputs import load_document

    doc = load_document(str(DOCS / "doc22.pdf"))
    text, _, _ = ocr.read_pages(doc.pages)
    words = {w.strip(",.").lower() for w in doc.text.split()}
    read = {w.strip(",.").lower() for w in text.split()}
    assert "bilbo" in read and "gandalf" in " ".join(read)
    assert len(words & read) / len(words) >= 0.6


def test_layout_reading_order() -> None:
    """Boxes on one line (vertical spans overlapping) go left to right, lines top to bottom."""
    boxes = [(52.0, 70.0, 300.0, "42.00"), (10.0, 30.0, 20.0, "INVOICE"), (50.0, 72.0, 20.0, "Total:")]
    assert ocr.layout(boxes, split_boxes=False) == "INVOICE\nTotal: 42.00"
    assert ocr.layout(boxes, split_boxes=True) == "INVOICE\nTotal:\n42.00"
    assert ocr.layout([]) == ""


def test_scanned_pdf_is_classified_by_its_words() -> None:
    """A PDF that is only a picture of a page (no text layer): the classifier reads its words."""
    import io

    import pymupdf

    import classer_local as cl

    page = _scan(["INVOICE No. 2024-117", "Amount due: 1,250.00 EUR", "Payment within 30 days"])
    png = io.BytesIO()
    page.save(png, format="PNG")
    pdf = pymupdf.open()
    pdf.new_page(width=595, height=842).insert_image(pymupdf.Rect(0, 0, 595, 842), stream=png.getvalue())
    r = cl.classify(file=pdf.tobytes(), labels=["invoice", "recipe", "poem"], cache=False)
    assert r.ocr_tokens >= 6 and r.tokens > 0
    assert r.label == "invoice"
