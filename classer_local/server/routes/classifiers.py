"""Saved classifiers over HTTP, owned by the key that made them.

A key sees (lists, reads, scores with) the classifiers it made and those made ``shared``;
it may delete only its own. Another key's unshared classifier is a 404, exactly as one
that does not exist. Admin keys see and delete every classifier. A name belongs to the key
that first saved it: another key saving under it gets 409 ``classifier_name_taken``
(an admin's new version keeps the name's owner).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ... import store
from ...errors import ConflictError, NotFoundError, PermissionDeniedError
from ..convert import check_strings
from ..deps import Authed, Caller, Metered
from ..schemas import ERRORS, ClassifierCreateRequest
from ..state import app_state

router = APIRouter(tags=["classifiers"], responses=ERRORS)


def _readable(ref: str, caller: Caller) -> dict[str, Any]:
    info = store.get(ref)
    if not caller.may_read(info.get("owner"), info.get("shared", False)):
        raise store.not_found(ref)
    return info


@router.get("/v1/classifiers")
async def list_classifiers(caller: Authed) -> dict[str, Any]:
    """The latest version of every classifier the caller may read."""
    rows = await run_in_threadpool(store.list)
    return {"classifiers": [c for c in rows if caller.may_read(c.get("owner"), c.get("shared", False))]}


def _owner_for(name: str, caller: Caller) -> str | None:
    """Who owns the version about to be saved under ``name``; 409 when the name is another key's."""
    try:
        latest = store.get(name)
    except NotFoundError:
        return caller.key_id
    owner = latest.get("owner")
    if caller.may_change(owner):
        return owner if caller.admin else caller.key_id
    raise ConflictError(
        "classifier_name_taken",
        f"The name {name!r} belongs to another key; choose another name.",
        {"name": name},
    )


@router.post("/v1/classifiers", status_code=201)
async def create_classifier(
    body: ClassifierCreateRequest, request: Request, caller: Metered
) -> dict[str, Any]:
    """Fit and save a classifier as the next version of ``name``; examples are texts or data: URLs."""
    data = body.model_dump()
    check_strings(data)
    owner = await run_in_threadpool(_owner_for, store.parse_ref(body.name)[0], caller)
    priority = data.pop("priority") or "standard"
    name = data.pop("name")
    labels = data.pop("labels")
    # Fitting embeds every label and example: model work, so the model thread.
    return await app_state(request).batcher.call(
        lambda: store.create(name, labels, priority=priority, owner=owner, allow_paths=False, **data)
    )


@router.get("/v1/classifiers/{name}")
async def get_classifier(name: str, caller: Authed) -> dict[str, Any]:
    """One version's info (``name`` is the latest, ``name@vN`` a given one)."""
    check_strings(name)
    return await run_in_threadpool(_readable, name, caller)


@router.delete("/v1/classifiers/{name}")
async def delete_classifier(name: str, caller: Authed) -> dict[str, Any]:
    """Delete one version (``name@vN``) or every version (``name``) of the caller's own classifier."""
    check_strings(name)

    def delete() -> dict[str, Any]:
        info = _readable(name, caller)
        if not caller.may_change(info.get("owner")):
            raise PermissionDeniedError(
                "forbidden",
                f"Classifier {name!r} is shared with this key, not owned by it: it cannot be deleted.",
                {"classifier": name},
            )
        return store.delete(name)

    return await run_in_threadpool(delete)
