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


def _photo_of_text(lines: list[str]) -> bytes:
    """A PNG picture holding these lines (as a phone photo of a receipt or a screenshot would)."""
    import io

    png = io.BytesIO()
    _scan(lines).crop((0, 0, 595, 300)).save(png, format="PNG")
    return png.getvalue()


def test_images_that_hold_text_are_read_with_ocr_true() -> None:
    """``ocr=True``: an image's words are read and scored with its look; off by default (seconds a picture)."""
    import classer_local as cl

    image = _photo_of_text(["RECEIPT", "Cappuccino 3.50", "Croissant 2.20", "TOTAL PAID 5.70", "Thank you!"])
    labels = ["receipt", "cat", "mountain landscape"]
    read = cl.classify(image=image, labels=labels, ocr=True, cache=False)
    assert read.ocr_tokens >= 6 and read.tokens > 0 and read.label == "receipt"
    plain = cl.classify(image=image, labels=labels, cache=False)
    assert plain.ocr_tokens == 0 and plain.tokens == 0 and plain.scores != read.scores
    tags = cl.tag_batch(images=[image], labels=labels, ocr=True, threshold=0.0, cache=False)
    assert tags[0].ocr_tokens == read.ocr_tokens


def test_ocr_option_is_checked() -> None:
    import classer_local as cl
    from classer_local.errors import InvalidRequestError

    clf = cl.Classifier(["a", "b"], priority="fast", ocr="yes")  # checked on first use
    with pytest.raises(InvalidRequestError) as exc:
        clf.classify("x")
    assert exc.value.code == "ocr_invalid"
    with pytest.raises(InvalidRequestError) as exc:
        cl.classify(text="x", classifier="tickets", ocr=True)
    assert exc.value.code == "ocr_with_classifier"


def test_cli_ocr_flag(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    image = tmp_path / "receipt.png"
    image.write_bytes(_photo_of_text(["RECEIPT", "Cappuccino 3.50", "TOTAL PAID 3.50"]))
    res = subprocess.run([sys.executable, "-m", "classer_local.cli", "classify", "--image", str(image), "--ocr",
                          "-l", "receipt", "-l", "cat", "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CLASSER_HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ocr_tokens"] >= 4 and out["label"] == "receipt"


def test_jobs_read_image_words_with_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json

    import classer_local as cl

    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    image = base64.b64encode(_photo_of_text(["RECEIPT", "Cappuccino 3.50", "TOTAL PAID 3.50"])).decode()
    rows = [{"id": "r1", "image": image}, {"id": "t1", "text": "a fluffy cat asleep on the sofa"}]
    job = cl.jobs.create(rows, labels=["receipt", "cat"], ocr=True)
    assert job.start().status == "completed"
    out = {r["id"]: r for r in job.results()}
    assert out["r1"]["ocr_tokens"] >= 4 and out["r1"]["label"] == "receipt"
    assert out["t1"]["ocr_tokens"] == 0 and out["t1"]["label"] == "cat"
    assert json.loads((tmp_path / "jobs" / job.id / "job.json").read_text())["ocr"] is True
