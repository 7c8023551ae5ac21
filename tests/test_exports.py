"""The public surface is pinned: adding or removing a name is a deliberate change."""

import classer_local as cl


def test_all_is_sorted_and_exact():
    assert cl.__all__ == sorted(cl.__all__)
    assert set(cl.__all__) == {
        "Classifier", "ClassifyResult", "ExampleWarning", "Item", "LabelScore", "Priority", "TagResult", "Truncate",
        "__version__", "classifiers", "classify", "classify_batch", "cohere", "errors", "jobs", "logs",
        "models", "tag", "tag_batch", "usage",
    }


def test_every_export_resolves():
    for name in cl.__all__:
        assert getattr(cl, name) is not None, name
