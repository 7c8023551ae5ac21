"""Batch jobs over HTTP (``/v1/batch``): NDJSON uploads, owned by the key that made them.

Jobs made here are untrusted (``allow_paths=False``): no row's ``image``/``file`` is ever a
path on this machine. The upload is scanned with the same rules before the job is made, so
a row naming a path refuses the whole upload (422 ``path_not_allowed``, with its row).
Another key's job is a 404, exactly as one that does not exist; admin keys see every job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...errors import ClasserError, InputNotAllowedError, InvalidRequestError, NotFoundError, ServerError
from ..convert import check_strings
from ..deps import Authed, Caller, Metered
from ..schemas import ERRORS, JobKind, JobStatus, Priority
from ..state import app_state
from .classify import visible_ref

router = APIRouter(tags=["jobs"], responses=ERRORS)


def _jobs() -> Any:
    try:
        from ... import jobs
    except ImportError as exc:
        raise ServerError(
            "not_implemented", "Batch jobs are not available in this build.", {"reason": str(exc)}
        ) from None
    return jobs


def _job_dict(job: Any) -> dict[str, Any]:
    d = dict(job.to_dict())
    # Server paths are no business of the client's; it reads results through the API.
    d.pop("input", None)
    d.pop("results", None)
    d["results_url"] = f"/v1/batch/{d['id']}/results"
    return d


def _own_job(job_id: str, caller: Caller) -> Any:
    """The job, if the caller made it (or is an admin); 404 as for a job that does not exist."""
    check_strings(job_id)
    job = _jobs().get(job_id)
    if not caller.may_change(job.owner):
        raise NotFoundError("job_not_found", f"No job {job_id!r}.", {"job_id": job_id})
    return job


def _scan_upload(path: Path) -> None:
    """Refuse an upload any row of which names a path: the job's own row rules, applied up front."""
    from ...jobs.lines import parse_line

    with open(path, "rb") as fh:
        for row, raw in enumerate(fh):
            # A key is "image"/"file" only if spelt so or escaped (\u...): other rows need no parsing.
            if not raw.strip() or (b"image" not in raw and b"file" not in raw and b"\\u" not in raw):
                continue
            err = parse_line(raw.rstrip(b"\r\n"), row, allow_paths=False).error
            if err is not None and err.code == "path_not_allowed":
                raise InputNotAllowedError(
                    "path_not_allowed",
                    f"Row {row}: over HTTP, image and file must be base64, a data: URL or an http(s) URL; "
                    "other strings (such as paths) are never read as files here.",
                    {"row": row, "field": err.details.get("field")},
                )


def _upload_dir() -> Path:
    from ... import config

    return config.subdir("uploads")


async def _upload_to_file(request: Request) -> tuple[Path, dict[str, Any]]:
    """Stream an NDJSON upload (multipart ``file`` or the raw body) to a temporary file."""
    limit = app_state(request).config.max_upload_bytes
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_upload_dir()))
    path = folder / "input.ndjson"
    form_fields: dict[str, Any] = {}
    ctype = request.headers.get("content-type", "").lower()
    size = 0

    def too_large() -> InvalidRequestError:
        return InvalidRequestError(
            "request_too_large", f"The upload is larger than {limit} bytes.", {"max_bytes": limit}
        )

    try:
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=20)
            except Exception as exc:  # noqa: BLE001 - any malformed multipart is the client's 400
                raise InvalidRequestError(
                    "multipart_invalid", f"Could not read the multipart body: {exc}."
                ) from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidRequestError("file_required", "Upload the NDJSON as the multipart field `file`.")
            with open(path, "wb") as fh:  # noqa: ASYNC230 - local disk, 1 MB chunks
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise too_large()
                    fh.write(chunk)
            form_fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            form_fields["label"] = [v for v in form.getlist("label") if isinstance(v, str)]
        else:
            with open(path, "wb") as fh:  # noqa: ASYNC230 - local disk, small chunks
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_large()
                    fh.write(chunk)
        if size == 0:
            raise InvalidRequestError("file_empty", "The uploaded NDJSON is empty.")
        await run_in_threadpool(_scan_upload, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path, form_fields


@router.post(
    "/v1/batch",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def create_job(
    request: Request,
    caller: Metered,
    labels: str | None = Query(None, description="Comma-separated labels."),
    label: list[str] | None = Query(None, description="A label; repeat for more."),  # noqa: B008
    classifier: str | None = None,
    kind: JobKind = "classify",
    priority: Priority | None = None,
    threshold: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
    glossary: bool = Query(True, description="Labels without a description borrow the built-in glossary's."),
    ocr: bool = Query(False, description="Also read the words in rows' images (the server's ocr extra)."),
    language: str | None = Query(None, description='"auto": rows read as not English go to the multilingual model.'),
    start: bool = False,
) -> dict[str, Any]:
    """Upload NDJSON rows ``{"id"?, "text" | "image" | "file"}`` as a job; ``start=true`` runs it now."""
    jobs = _jobs()
    path, form = await _upload_to_file(request)
    try:
        names = [*(label or []), *form.get("label", [])]
        for raw in (labels, form.get("labels")):
            if raw:
                names.extend(x.strip() for x in raw.split(",") if x.strip())
        classifier = classifier or form.get("classifier")
        kind = form.get("kind", kind)
        check_strings([names, classifier, kind])
        kwargs: dict[str, Any] = {
            "kind": kind,
            "priority": priority or form.get("priority") or "standard",
            "threshold": threshold,
            "copy": True,
            "owner": caller.key_id,
            "allow_paths": False,
            "glossary": glossary,
            "ocr": ocr,
            "language": language,
        }
        if names:
            kwargs["labels"] = names
        if classifier:
            kwargs["classifier"] = await run_in_threadpool(visible_ref, classifier, caller)
        job = await run_in_threadpool(lambda: jobs.create(str(path), **kwargs))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    if start or str(form.get("start", "")).lower() in ("1", "true", "yes"):
        await run_in_threadpool(lambda: job.start(wait=False))
    return _job_dict(job)


@router.post("/v1/batch/{job_id}/start")
async def start_job(job_id: str, caller: Metered) -> dict[str, Any]:
    """Start (or resume) one of the caller's jobs in the background."""
    job = await run_in_threadpool(_own_job, job_id, caller)
    await run_in_threadpool(lambda: job.start(wait=False))
    return _job_dict(job)


@router.get("/v1/batch")
async def list_jobs(caller: Authed, status: JobStatus | None = None) -> dict[str, Any]:
    """The caller's jobs (every job for an admin), newest first."""
    jobs = _jobs()

    def mine() -> list[dict[str, Any]]:
        out = []
        for j in jobs.list(status):
            try:
                if caller.may_change(j.owner):
                    out.append(_job_dict(j))
            except (ClasserError, ValueError, OSError):  # deleted while listing
                continue
        return out

    return {"jobs": await run_in_threadpool(mine)}


@router.get("/v1/batch/{job_id}")
async def get_job(job_id: str, caller: Authed) -> dict[str, Any]:
    """One of the caller's jobs: status and progress."""
    return await run_in_threadpool(lambda: _job_dict(_own_job(job_id, caller)))


@router.get("/v1/batch/{job_id}/results")
async def job_results(job_id: str, caller: Authed) -> StreamingResponse:
    """The result lines written so far, as NDJSON, in input order."""
    job = await run_in_threadpool(_own_job, job_id, caller)

    def lines() -> Any:
        for row in job.results():
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")

    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"X-Job-Status": job.status})


@router.delete("/v1/batch/{job_id}")
async def delete_job(job_id: str, caller: Authed) -> dict[str, Any]:
    """Delete one of the caller's jobs and its results."""
    jobs = _jobs()
    await run_in_threadpool(_own_job, job_id, caller)
    await run_in_threadpool(jobs.delete, job_id)
    return {"id": job_id, "object": "job", "deleted": True}
