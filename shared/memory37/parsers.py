"""Read knowledge sources: Markdown (optional YAML front matter), plain text, and JSONL.

JSONL lines have the DESIGN.md shape ``{"id", "title", "text", "tags", "lang", "meta"}``. A file that
cannot be read, or a line that is not valid, becomes a ``SourceError`` naming the file and line; parsing
goes on with the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".text"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | JSONL_SUFFIXES
MAX_SOURCE_ID = 512


@dataclass
class SourceDocument:
    source: str  # the file it came from
    source_id: str  # stable id: JSONL "id", else the path relative to the ingested root
    title: str
    text: str
    markdown: bool
    tags: list[str] = field(default_factory=list)
    lang: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    date: datetime | None = None
    line: int | None = None


@dataclass
class SourceError:
    source: str
    line: int | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "line": self.line, "error": self.error}


class JsonlRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_SOURCE_ID)
    title: str = Field(default="", max_length=1000)
    text: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    lang: str | None = Field(default=None, max_length=16)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def iter_files(root: Path) -> list[Path]:
    """The supported files under ``root`` (or ``root`` itself), sorted; hidden files and folders skipped."""
    if root.is_file():
        return [root]
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES:
            found.append(path)
    return sorted(found)


def relative_id(path: Path, root: Path) -> str:
    if root.is_file():
        return path.name
    return path.relative_to(root).as_posix()


def parse_date(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"date {value!r} is not ISO 8601") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"date {value!r} is not ISO 8601")


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [t for t in re.split(r"[,\s]+", value) if t]
    if not isinstance(value, list) or not all(isinstance(t, str | int) for t in value):
        raise ValueError("tags must be a list of strings")
    return sorted({str(t).strip() for t in value if str(t).strip()})


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_H1 = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.M)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    data = yaml.safe_load(m.group(1)) or {}
    if not isinstance(data, dict):
        raise ValueError("front matter is not a mapping")
    return data, text[m.end() :]


def _title_from_name(path: Path) -> str:
    return re.sub(r"[_-]+", " ", path.stem).strip() or path.name


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig")


def parse_file(path: Path, root: Path) -> Iterator[SourceDocument | SourceError]:
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        yield SourceError(
            source, None, f"unsupported file type {suffix or '(none)'}: use .md, .txt or .jsonl"
        )
        return
    try:
        text = _read_text(path)
    except UnicodeDecodeError as exc:
        yield SourceError(source, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")
        return
    except OSError as exc:
        yield SourceError(source, None, f"cannot read: {exc.strerror or exc}")
        return
    if suffix in JSONL_SUFFIXES:
        yield from _parse_jsonl(source, text)
        return
    sid = relative_id(path, root)
    if suffix in TEXT_SUFFIXES:
        if not text.strip():
            yield SourceError(source, None, "empty file")
            return
        yield SourceDocument(source, sid, _title_from_name(path), text, markdown=False)
        return
    try:
        front, body = split_front_matter(text)
        tags = _tags(front.pop("tags", None))
        when = parse_date(front.pop("date", None))
    except (yaml.YAMLError, ValueError) as exc:
        yield SourceError(source, 1, f"front matter: {exc}")
        return
    if not body.strip():
        yield SourceError(source, None, "empty document")
        return
    h1 = _H1.search(body)
    title = str(front.pop("title", "") or (h1.group(1).strip() if h1 else _title_from_name(path)))
    lang = front.pop("lang", None)
    sid = str(front.pop("id", sid))[:MAX_SOURCE_ID]
    yield SourceDocument(
        source,
        sid,
        title,
        body,
        markdown=True,
        tags=tags,
        lang=str(lang) if lang else None,
        meta={k: v for k, v in front.items() if _jsonable(v)},
        date=when,
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _parse_jsonl(source: str, text: str) -> Iterator[SourceDocument | SourceError]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            yield SourceError(source, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(raw, dict):
            yield SourceError(source, lineno, "a line must be a JSON object")
            continue
        try:
            rec = JsonlRecord.model_validate(raw)
            tags = _tags(rec.tags)
            when = parse_date(rec.meta.get("date"))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}" for e in exc.errors()
            )
            yield SourceError(source, lineno, problems)
            continue
        except ValueError as exc:
            yield SourceError(source, lineno, f"meta.{exc}")
            continue
        yield SourceDocument(
            source,
            rec.id,
            rec.title.strip() or rec.id,
            rec.text,
            markdown=True,
            tags=tags,
            lang=rec.lang,
            meta=rec.meta,
            date=when,
            line=lineno,
        )
