"""Shared fixtures. Every test session gets its own CLASSER_HOME, and hub access is off."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("CLASSER_HOME", tempfile.mkdtemp(prefix="classer-test-home-"))


@pytest.fixture(scope="session")
def standard_clf():
    """A loaded standard-tier classifier (MiniLM), shared: tests must not mutate it."""
    import classer_local as cl

    clf = cl.Classifier(["billing", "technical", "sales"])
    clf.classify("warm up", cache=False)
    return clf


@pytest.fixture(scope="session")
def fast_clf():
    import classer_local as cl

    clf = cl.Classifier(["billing", "technical", "sales"], priority="fast")
    clf.classify("warm up", cache=False)
    return clf
