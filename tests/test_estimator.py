"""Classifier as a scikit-learn estimator: params, clone, cross-validation, grid search, pipeline, pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import FunctionTransformer, Pipeline

import classer_local as cl
from classer_local import pool
from classer_local.api import score_routed
from classer_local.classifier import Item
from classer_local.errors import InvalidRequestError

X = ["I was charged twice", "refund my payment", "my invoice is wrong", "billing error on my card",
     "the app crashes", "cannot log in", "error 500 on save", "the page does not load",
     "I want a demo", "pricing for 50 seats", "can we talk about a quote", "enterprise plan cost"]
y = ["billing"] * 4 + ["technical"] * 4 + ["sales"] * 4


def test_params_and_clone() -> None:
    clf = cl.Classifier(priority="fast", threshold=0.4)
    params = clf.get_params()
    assert params["priority"] == "fast" and params["threshold"] == 0.4 and params["labels"] is None
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == params
    fitted = clone(clf).fit(X, y)
    assert list(fitted.classes_) == ["billing", "sales", "technical"]
    assert clone(fitted).get_params()["labels"] is None  # clone drops fitted state
    with pytest.raises(InvalidRequestError) as e:
        clf.set_params(nonsense=1)
    assert e.value.code == "param_unknown"


def test_cross_val_score_and_grid_search() -> None:
    scores = cross_val_score(cl.Classifier(priority="fast"), X, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    grid = GridSearchCV(cl.Classifier(priority="fast"), {"threshold": [0.3, 0.6]}, cv=2).fit(X, y)
    assert grid.best_params_["threshold"] in (0.3, 0.6)
    assert grid.predict(["my card was charged twice"])[0] in {"billing", "sales", "technical"}


def test_pipeline_and_pickle() -> None:
    pipe = Pipeline([("clean", FunctionTransformer(lambda xs: [x.lower() for x in xs])),
                     ("clf", cl.Classifier(priority="fast"))]).fit(X, y)
    assert pipe.score(X, y) > 0.5
    clf = cl.Classifier(priority="fast").fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert np.allclose(again.predict_proba(X[:3]), clf.predict_proba(X[:3]))
    assert list(again.predict(X[:3])) == list(clf.predict(X[:3]))


def test_multilabel_indicator_fit() -> None:
    from sklearn.preprocessing import MultiLabelBinarizer

    mlb = MultiLabelBinarizer(classes=["billing", "technical", "sales"])
    Y = mlb.fit_transform([["billing"], ["billing", "technical"], ["technical"], ["sales"], ["sales", "billing"],
                           ["technical"]])
    texts = ["refund please", "charged twice and the app crashed", "the app crashes", "a quote please",
             "pricing and an invoice", "cannot log in"]
    clf = cl.Classifier(["billing", "technical", "sales"], priority="fast").fit(texts, Y)
    assert clf.examples_["billing"] == ["refund please", "charged twice and the app crashed", "pricing and an invoice"]
    with pytest.raises(InvalidRequestError) as e:
        cl.Classifier(["a", "b"], priority="fast").fit(texts, Y)
    assert e.value.code == "fit_labels_mismatch"


def test_init_only_stores_the_parameters() -> None:
    clf = cl.Classifier(["billing", "technical"], priority="fast", threshold=0.4)
    assert {k for k in vars(clf) if not k.startswith("_")} == set(clf.get_params())
    assert all(getattr(clf, k) is v for k, v in clf.get_params().items())
    assert repr(clf) == "Classifier(labels=['billing', 'technical'], priority='fast', threshold=0.4)"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"labels": ["a", "a"]}, "labels_duplicate"),
    ({"labels": ["a", "b"], "descriptions": {"c": "not a label"}}, "description_unknown_label"),
    ({"labels": ["a", "b"], "glossary": "yes"}, "glossary_invalid"),
    ({"labels": ["a", "b"], "model": "no-such-model"}, "model_unknown"),
    ({"labels": ["a", "b"], "truncate": "MIDDLE"}, "invalid_truncate"),
])
def test_bad_parameters_raise_their_typed_error_on_first_use(kwargs: dict, code: str) -> None:
    clf = cl.Classifier(priority="fast", **kwargs)  # stores them: construction never raises
    for use in (lambda: clf.classify("hello"), lambda: clf.tag(["hello"]), lambda: clf.fit(X, y),
                lambda: clf.predict(X[:1]), lambda: clf.labels_,
                lambda: score_routed(clf, [Item("hi")], "tag", None, endpoint="tag")):
        with pytest.raises(InvalidRequestError) as e:
            use()
        assert e.value.code == code
    defaults = cl.Classifier().get_params()
    clf.set_params(**{**{k: defaults[k] for k in kwargs}, "labels": ["a", "b"]})
    assert clf.classify("hello").label in {"a", "b"}  # set_params drops the failed setup


def test_pool_keeps_no_classifier_whose_setup_failed() -> None:
    pool.clear()
    with pytest.raises(InvalidRequestError) as e:
        cl.classify("hello", labels=["a", "a"], priority="fast")
    assert e.value.code == "labels_duplicate" and not pool._classifiers


def test_fit_leaves_the_parameters_as_given() -> None:
    labels = ["billing", "technical"]
    clf = cl.Classifier(labels, priority="fast")
    params = clf.get_params()
    clf.fit(X, y)
    assert clf.get_params() == params and clf.labels is labels and clf.labels == ["billing", "technical"]
    assert clf.examples is None and list(clf.classes_) == ["billing", "technical", "sales"]
    assert clf.fit(X[:4], y[:4]).labels_ == ["billing", "technical"]  # each fit starts from the parameters
    assert set(clf.examples_) == {"billing"}


# scikit-learn's common checks. check_estimator itself runs only check_estimator_cloneable for an
# estimator whose input tag is text (string, not two_d_array), so the checks that apply are run one
# by one here. Some of them fit on generated numeric rows; they check only the parameters and the
# attributes fit sets, which do not depend on what the rows hold. Not run, with the reason:
# - check_dict_unchanged, check_classifiers_classes, check_fit_idempotent, check_readonly_memmap_input
#   and every other check of what fit, predict or score make of generated numeric 2-D arrays: the
#   input is text, and a numeric row is not one (predict refuses it).
APPLICABLE_CHECKS = [
    "check_estimator_cloneable", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params", "check_estimator_repr", "check_valid_tag_types", "check_estimator_tags_renamed",
    "check_mixin_order", "check_positive_only_tag_during_fit", "check_n_features_in_after_fitting",
    "check_estimators_unfitted", "check_fit_check_is_fitted", "check_estimators_overwrite_params",
    "check_no_attributes_set_in_init", "check_do_not_raise_errors_in_init_or_set_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
]


@pytest.mark.parametrize("check", APPLICABLE_CHECKS)
def test_sklearn_common_checks_that_apply_to_text(check: str) -> None:
    import warnings

    import sklearn.utils.estimator_checks as ec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(ec, check)("Classifier", cl.Classifier(priority="fast"))
