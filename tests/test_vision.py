"""Image backends (timm EfficientNet-Lite0, open_clip) and the VisualScorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classer_local import registry, vision
from classer_local.errors import InvalidRequestError, ModelNotInstalledError
from classer_local.inputs import load_document, load_images
from classer_local.registry import ModelSpec

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def cifar():
    return {lab: load_images(FIXTURES / f"cifar_{lab}.jpg")[0] for lab in ("cat", "truck")}


@pytest.fixture(scope="session")
def text_embedder():
    from classer_local.backends import load_text

    return load_text(registry.get("standard"), "cpu")


@pytest.fixture(scope="session")
def timm_backend():
    from classer_local.backends import load_image

    return load_image(registry.get("image"), "cpu")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random open_clip model written the way open_clip's hub folders are laid out."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-clip")
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
    }
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


@pytest.fixture(scope="session")
def clip_spec(tiny_clip_dir):
    return ModelSpec(name="tiny-clip", kind="image", backend="open-clip", weights=f"local-dir:{tiny_clip_dir}",
                     dim=32, batch_size=4, calibration={"temperature": 0.02})


# --- registry -------------------------------------------------------------------------------


def test_registry_image_default_and_clip_entries(monkeypatch, tmp_path):
    spec = registry.get("image")
    assert spec.name == "efficientnet-lite0" and spec.kind == "image" and spec.backend == "timm"
    assert spec.installed() and spec.options["arch"] == "tf_efficientnet_lite0"
    assert spec.calibration["temperature"] > 0 and spec.calibration["temperature_few_shot"] > 0
    clip = registry.get("clip-vit-b-32")
    monkeypatch.setenv("CLASSER_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotInstalledError) as e:
        clip.weights_path()
    assert "open_clip_model.safetensors" in e.value.details["install"]
    (tmp_path / "clip-vit-b-32").mkdir()
    assert clip.weights_path() == tmp_path / "clip-vit-b-32"


# --- timm -----------------------------------------------------------------------------------


def test_timm_features_probs_names(timm_backend, cifar):
    imgs = [cifar["cat"], cifar["truck"]]
    feats, probs = timm_backend.encode_with_probs(imgs)
    assert feats.shape == (2, 1280) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    np.testing.assert_allclose(timm_backend.encode_images(imgs), feats, atol=1e-5)
    assert len(timm_backend.class_names) == 1000 and timm_backend.class_names[0] == "tench"
    assert timm_backend.tokens_per_image == 49 and timm_backend.visual_tokens(3) == 147


def test_timm_runs_channels_last_and_bfloat16_only_where_native(timm_backend, cifar, monkeypatch):
    import torch

    from classer_local.backends._precision import native_bf16
    from classer_local.backends.timm_image import TimmImageEmbedder

    imgs = [cifar["cat"], cifar["truck"]]
    assert timm_backend.bf16 == native_bf16()  # the entry asks for bfloat16; emulated bfloat16 is never chosen
    first = next(p for p in timm_backend.model.parameters() if p.dim() == 4)
    assert first.is_contiguous(memory_format=torch.channels_last)
    monkeypatch.setenv("CLASSER_BF16", "0")
    exact = TimmImageEmbedder(registry.get("image"), "cpu")
    assert not exact.bf16
    feats, probs = exact.encode_with_probs(imgs)
    nchw = torch.from_numpy(np.ascontiguousarray(exact._prepare(imgs)))  # the layout it ran in before
    exact.model.to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        ref = exact.model.forward_head(exact.model.forward_features(nchw), pre_logits=True).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(feats, ref, atol=1e-5)  # channels-last changes the speed, not the answer
    fast, fast_probs = timm_backend.encode_with_probs(imgs)
    assert (fast * feats).sum(1).min() > 0.97 and (fast_probs.argmax(1) == probs.argmax(1)).all()


def test_visual_scorer_zero_shot_on_cifar(timm_backend, text_embedder, cifar):
    labels = ["cat", "truck", "ship"]
    scorer = vision.VisualScorer(labels, {"ship": "a boat on the water"}, None, "photo", text_embedder,
                                 registry.get("image"), "cpu")
    sims, tokens = scorer.score([[cifar["cat"]], [cifar["truck"], cifar["truck"]]])
    assert sims.shape == (2, 3) and sims.dtype == np.float32
    assert np.all(np.abs(sims) <= 1.0 + 1e-5)
    assert tokens == [49, 98]
    assert scorer.temperature == registry.get("image").calibration["temperature"]
    assert scorer.visual_weight == vision.VISUAL_WEIGHT
    # the same image scored twice in one item pools to the same vector as once
    once, _ = scorer.score([[cifar["truck"]]])
    np.testing.assert_allclose(once[0], sims[1], atol=1e-5)
    # class-name vectors are cached on disk for the next process
    from classer_local import config

    assert list((config.subdir("cache") / "vision").glob("class-names-*.npy"))


def test_visual_scorer_few_shot_and_document_examples(timm_backend, text_embedder, cifar):
    memo = load_document(FIXTURES / "memo.pdf")
    examples = {
        "cat": [cifar["cat"]],
        "truck": [FIXTURES / "cifar_truck.jpg", "a text example is skipped"],
        "letter": [memo],
    }
    scorer = vision.VisualScorer(["cat", "truck", "letter"], examples=examples, text_embedder=text_embedder)
    sims, tokens = scorer.score([[cifar["cat"]], [cifar["truck"]], memo.pages])
    assert list(sims.argmax(1)) == [0, 1, 2]
    assert tokens == [49, 49, 49 * memo.n_pages]
    assert scorer.has_examples_.all()
    assert scorer.temperature == registry.get("image").calibration["temperature_few_shot"]
    assert scorer.visual_weight == vision.FEW_SHOT_VISUAL_WEIGHT


# --- examples under the input policy ---------------------------------------------------------


def test_example_images_follow_the_input_policy(tmp_path):
    import base64

    from classer_local.errors import InputNotAllowedError
    from classer_local.inputs import REMOTE, TRUSTED

    cat = FIXTURES / "cifar_cat.jpg"
    # REMOTE: a path-like string is a text example (never looked up); a Path object is refused
    assert vision._example_images(str(cat), REMOTE) is None
    assert vision._example_images(" /etc/passwd ", REMOTE) is None
    with pytest.raises(InputNotAllowedError) as e:
        vision._example_images(cat, REMOTE)
    assert e.value.code == "path_not_allowed"
    data_url = "data:image/jpeg;base64," + base64.b64encode(cat.read_bytes()).decode()
    assert [im.size for im in vision._example_images(data_url, REMOTE)] == [(32, 32)]
    # TRUSTED: local files; the kind comes from the bytes, not the name
    assert [im.size for im in vision._example_images(str(cat), TRUSTED)] == [(32, 32)]
    disguised = tmp_path / "scan.png"
    disguised.write_bytes((FIXTURES / "memo.pdf").read_bytes())
    pages = vision._example_images(str(disguised), TRUSTED)
    assert pages and pages[0].size[1] == 850  # rendered as a document page
    assert vision._example_images((FIXTURES / "memo.pdf").read_bytes(), REMOTE)[0].size[1] == 850
    assert vision._example_images("a plain text example", TRUSTED) is None


def test_visual_scorer_remote_policy_never_reads_example_paths(timm_backend, text_embedder):
    import base64

    from classer_local.inputs import REMOTE

    cat, truck = FIXTURES / "cifar_cat.jpg", FIXTURES / "cifar_truck.jpg"
    truck_url = "data:image/jpeg;base64," + base64.b64encode(truck.read_bytes()).decode()
    examples = {"cat": [str(cat)], "truck": [truck_url]}
    remote = vision.VisualScorer(["cat", "truck"], examples=examples, text_embedder=text_embedder, policy=REMOTE)
    assert remote.policy is REMOTE and list(remote.has_examples_) == [False, True]
    trusted = vision.VisualScorer(["cat", "truck"], examples=examples, text_embedder=text_embedder)
    assert list(trusted.has_examples_) == [True, True]


def test_document_pages_are_letterboxed_not_cropped(timm_backend):
    from classer_local.inputs.documents import PAGE_INFO_KEY

    assert load_document(FIXTURES / "memo.pdf").pages[0].info[PAGE_INFO_KEY] is True
    page = Image.new("RGB", (601, 850), (255, 255, 255))
    page.paste((0, 0, 0), (0, 0, 601, 40))  # a letterhead band across the top of the page
    photo = page.copy()  # the same pixels, not marked as a page
    page.info[PAGE_INFO_KEY] = True
    viewed = vision._model_view([page, photo], timm_backend.crop_pct)
    assert viewed[1] is photo
    box = viewed[0]
    assert box.size[0] == box.size[1] == -(-850 * 1000 // int(timm_backend.crop_pct * 1000))
    x = timm_backend._prepare(viewed)  # (2, 3, 224, 224), -1 black .. +1 white
    top_centre = x[:, :, 1:6, 100:124].mean(axis=(1, 2, 3))
    assert top_centre[0] < 0  # the letterhead is in view of the model
    assert top_centre[1] > 0.9  # centre-cropped as a photo, it was cut off
    assert x[0, :, 100:124, 0:3].mean() > 0.9  # white bars at the sides, the page unsquashed


def test_visual_scorer_errors(text_embedder):
    with pytest.raises(InvalidRequestError) as e:
        vision.VisualScorer(["a", "b"])
    assert e.value.code == "text_embedder_required"
    with pytest.raises(InvalidRequestError) as e:
        vision.VisualScorer(["a"], examples={"zzz": [Image.new("RGB", (8, 8))]}, text_embedder=text_embedder)
    assert e.value.code == "example_label_unknown"
    scorer = vision.VisualScorer(["a", "b"], text_embedder=text_embedder)
    with pytest.raises(InvalidRequestError):
        scorer.score([[]])
    assert scorer.score([])[0].shape == (0, 2)


def test_fusion_weights_sum_to_one():
    # vision.fuse was exported but unused (fusion.py fuses); the weights it documented stay.
    assert not hasattr(vision, "fuse")
    assert vision.TEXT_WEIGHT + vision.VISUAL_WEIGHT == pytest.approx(1.0)


# --- open_clip ------------------------------------------------------------------------------


def test_open_clip_backend(clip_spec, cifar):
    from classer_local.backends.open_clip import OpenCLIPEmbedder

    m = OpenCLIPEmbedder(clip_spec, "cpu")
    img = m.encode_images([cifar["cat"], Image.new("RGB", (50, 70))])
    txt = m.encode_texts(["a photo of a cat", "a truck", "x"])
    assert img.shape == (2, 32) and txt.shape == (3, 32) and m.dim == 32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert m.tokens_per_image == 16  # (32 / 8) ** 2 patches


def test_open_clip_scorer_through_models_toml(tiny_clip_dir, tmp_path, monkeypatch, cifar):
    toml = tmp_path / "models.toml"
    toml.write_text(
        '[defaults]\nimage = "tiny"\n\n'
        f'[models.tiny]\nkind = "image"\nbackend = "open-clip"\nweights = "models-dir:{tiny_clip_dir.name}"\ndim = 32\n'
        '[models.tiny.calibration]\ntemperature = 0.02\ntemperature_few_shot = 0.03\n'
    )
    monkeypatch.setenv("CLASSER_MODELS_TOML", str(toml))
    monkeypatch.setenv("CLASSER_MODELS_DIR", str(tiny_clip_dir.parent))
    spec = registry.get("image")
    assert spec.name == "tiny"
    zs = vision.VisualScorer(["cat", "truck"], image_spec=spec, device="cpu")
    sims, tokens = zs.score([[cifar["cat"]], [cifar["truck"], cifar["cat"]]])
    assert sims.shape == (2, 2) and tokens == [16, 32] and zs.temperature == 0.02
    fs = vision.VisualScorer(["cat", "truck"], examples={"cat": [cifar["cat"]], "truck": [cifar["truck"]]},
                             image_spec=spec, device="cpu")
    sims, _ = fs.score([[cifar["cat"]], [cifar["truck"]]])
    assert list(sims.argmax(1)) == [0, 1] and fs.temperature == 0.03
