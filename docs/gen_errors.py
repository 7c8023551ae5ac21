"""Regenerate docs/errors.md from the source: every error code, its kind, HTTP status and message.

    python docs/gen_errors.py          # rewrite docs/errors.md
    python docs/gen_errors.py --check  # exit 1 if docs/errors.md is out of date (tests run this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classer_local import errors  # noqa: E402

CLASSES = {name: getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)}
# helpers that build an error from (code, message, ...)
HELPERS = {"_bad": errors.InvalidRequestError, "_bad_line": errors.InvalidRequestError}
CALL = re.compile(
    r"\b(" + "|".join(sorted(set(CLASSES) | set(HELPERS), key=len, reverse=True)) + r")\(\s*"
    r"(?:[a-z_]+,\s*)?\"([a-z][a-z0-9_]+)\",\s*(f?\"(?:[^\"\\]|\\.)*\"|f?'(?:[^'\\]|\\.)*')?", re.S)


# Codes built at run time (f"{what}_invalid", a conditional), which the pattern above cannot see.
DYNAMIC = {
    "image_invalid": (errors.InvalidRequestError, "classer_local/inputs/images.py"),
    "file_invalid": (errors.InvalidRequestError, "classer_local/inputs/images.py"),
    "document_invalid": (errors.InvalidRequestError, "classer_local/inputs/images.py"),
    "image_truncated": (errors.UnprocessableInputError, "classer_local/inputs/images.py"),
}


def collect() -> dict[str, dict]:
    codes: dict[str, dict] = {
        code: {"error": cls.error, "status": errors.status_for(cls(code, "")), "messages": [], "where": {where}}
        for code, (cls, where) in DYNAMIC.items()
    }
    for path in sorted((ROOT / "classer_local").rglob("*.py")):
        for m in CALL.finditer(path.read_text()):
            cls = CLASSES.get(m.group(1)) or HELPERS[m.group(1)]
            message = (m.group(3) or "").lstrip("f").strip("\"'")
            message = re.sub(r"\{[^}]*\}", "…", message)
            entry = codes.setdefault(m.group(2), {"error": cls.error, "status": errors.status_for(cls(m.group(2), "")), "messages": [],
                                                   "where": set()})
            if message and message not in entry["messages"]:
                entry["messages"].append(message)
            entry["where"].add(str(path.relative_to(ROOT)))
    return codes


def render(codes: dict[str, dict]) -> str:
    lines = [
        "# Error codes",
        "",
        "Every error body is `{error, code, message, details, docs_url}`; `docs_url` points at the code's",
        "entry below. `error` is the kind, and the HTTP server answers with its status. Generated from the",
        "source by `docs/gen_errors.py`; do not edit by hand.",
        "",
        "| kind (`error`) | status | exception |",
        "|---|---|---|",
    ]
    for cls in CLASSES.values():
        lines.append(f"| `{cls.error}` | {errors.STATUS.get(cls.error, 500)} | `{cls.__name__}` |")
    lines.append("")
    for code in sorted(codes):
        e = codes[code]
        lines += [f"## {code}", "", f"`{e['error']}` ({e['status']}) — raised in {', '.join(sorted(e['where']))}.", ""]
        for msg in e["messages"]:
            lines.append(f"- {msg}")
        if e["messages"]:
            lines.append("")
    return "\n".join(lines)


def main() -> int:
    out = ROOT / "docs" / "errors.md"
    text = render(collect())
    if "--check" in sys.argv:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print("docs/errors.md is out of date: run python docs/gen_errors.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out} ({text.count('## ')} codes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
