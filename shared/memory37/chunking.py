"""Heading-aware chunking with overlap.

Markdown is cut into sections at ATX headings (``#`` … ``######``, not inside fenced code); each section is
packed into chunks of at most ``max_tokens`` tokens from whole sentences, consecutive chunks sharing about
``overlap_tokens`` tokens. Every chunk carries its heading path ("Title › Section › Subsection"), which is
prefixed to the text that gets embedded and weighted highest in full-text search. Tokens are words and
punctuation marks (no tokenizer needed, so the Lambda indexer stays light).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.config.models import ChunkingSettings

SEPARATOR = " › "
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)\]]*\s+(?=[\"'«“(\[]?[A-ZА-ЯЁ0-9])")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str
    text: str
    token_count: int

    @property
    def embed_text(self) -> str:
        """What the embedder sees: the heading path, then the text."""
        return f"{self.heading}\n\n{self.text}" if self.heading else self.text

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()[:32]


@dataclass
class _Unit:
    text: str
    tokens: int
    paragraph_start: bool


def _sections(title: str, text: str, markdown: bool) -> list[tuple[str, str]]:
    """(heading path, body) for each section, in order."""
    if not markdown:
        return [(title, text)]
    out: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def path() -> str:
        parts = [title] if title else []
        for i, (_, name) in enumerate(stack):
            if i == 0 and name.strip().lower() == title.strip().lower():
                continue  # the H1 that is the title
            parts.append(name)
        return SEPARATOR.join(p for p in parts if p)

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            out.append((path(), "\n".join(body)))
            body = []
            level, name = len(m.group(1)), m.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, name))
        else:
            body.append(line)
    out.append((path(), "\n".join(body)))
    return [(h, b) for h, b in out if b.strip()]


def _split_long(text: str, max_tokens: int) -> list[str]:
    """Sentences of ``text``; a sentence longer than ``max_tokens`` is cut into word windows."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        if not sentence:
            continue
        if count_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        words = sentence.split()
        current: list[str] = []
        used = 0
        for word in words:
            n = count_tokens(word)
            if current and used + n > max_tokens:
                pieces.append(" ".join(current))
                current, used = [], 0
            current.append(word)
            used += n
        if current:
            pieces.append(" ".join(current))
    return pieces


def _units(body: str, max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in re.split(r"\n[ \t]*\n", body):
        if not paragraph.strip():
            continue
        lines = [ln.rstrip() for ln in paragraph.strip("\n").splitlines()]
        is_block = any(
            _FENCE.match(ln) or ln.lstrip().startswith(("-", "*", "|", ">")) for ln in lines
        ) or any(re.match(r"^\s*\d+[.)]\s", ln) for ln in lines)
        text = "\n".join(lines) if is_block else " ".join(ln.strip() for ln in lines)
        if not is_block:
            sentences = _split_long(text, max_tokens)
        elif count_tokens(text) <= max_tokens:
            sentences = [text]
        else:
            sentences = _split_block(lines, max_tokens)
        for i, s in enumerate(sentences):
            units.append(_Unit(s, count_tokens(s), paragraph_start=(i == 0)))
    return units


def _split_block(lines: list[str], max_tokens: int) -> list[str]:
    """A list/table/code block too long for one chunk: cut between lines (long lines into windows)."""
    out: list[str] = []
    current: list[str] = []
    used = 0
    for line in lines:
        n = count_tokens(line)
        if n > max_tokens:
            if current:
                out.append("\n".join(current))
                current, used = [], 0
            out.extend(_split_long(line, max_tokens))
            continue
        if current and used + n > max_tokens:
            out.append("\n".join(current))
            current, used = [], 0
        current.append(line)
        used += n
    if current:
        out.append("\n".join(current))
    return out


def _join(units: list[_Unit]) -> str:
    text = ""
    for i, u in enumerate(units):
        if i == 0:
            text = u.text
        else:
            text += ("\n\n" if u.paragraph_start else " ") + u.text
    return text


def _pack(units: list[_Unit], settings: ChunkingSettings) -> list[list[_Unit]]:
    chunks: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    fresh = 0  # tokens in `current` that are not overlap from the previous chunk
    for unit in units:
        if current and used + unit.tokens > settings.max_tokens and fresh > 0:
            chunks.append(current)
            carry: list[_Unit] = []
            carried = 0
            for prev in reversed(current):
                if carried + prev.tokens > settings.overlap_tokens:
                    break
                carry.insert(0, prev)
                carried += prev.tokens
            if carried + unit.tokens > settings.max_tokens:
                carry, carried = [], 0
            if carry:
                carry[0] = _Unit(carry[0].text, carry[0].tokens, paragraph_start=True)
            current, used, fresh = carry, carried, 0
        current.append(unit)
        used += unit.tokens
        fresh += unit.tokens
    if current and fresh > 0:
        if chunks and fresh < settings.min_tokens:
            tail = current[len(current) - _fresh_count(current, fresh) :]
            chunks[-1] = chunks[-1] + tail  # a tiny tail joins the previous chunk
        else:
            chunks.append(current)
    return chunks


def _fresh_count(current: list[_Unit], fresh_tokens: int) -> int:
    n, total = 0, 0
    for unit in reversed(current):
        if total >= fresh_tokens:
            break
        total += unit.tokens
        n += 1
    return n


def chunk_document(
    title: str, text: str, settings: ChunkingSettings, *, markdown: bool = True
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for heading, body in _sections(title.strip(), text, markdown):
        for group in _pack(_units(body, settings.max_tokens), settings):
            chunk_text = _join(group).strip()
            if not chunk_text:
                continue
            chunks.append(Chunk(len(chunks), heading, chunk_text, count_tokens(chunk_text)))
    return chunks
