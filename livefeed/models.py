"""Articles, briefs and comments: values, their JSON form, and validation of what clients send.

Validation follows SPEC "Objects": characters are code points after NFC normalisation,
surrounding whitespace is trimmed, empty text is invalid, unknown fields are rejected, and
control or bidi-override characters are refused so a comment cannot reorder a page.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from livefeed import limits
from livefeed.errors import InvalidInput

_SLUG = re.compile(limits.SLUG_PATTERN)
_ID = re.compile(limits.ID_PATTERN)
# C0/C1 controls except tab and newline, bidi embeddings, overrides and isolates, and lone
# surrogates (JSON can spell "\ud800", but it is no character and cannot be stored).
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FORBIDDEN_ONE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds, the wire form of every time."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_ms(iso: str) -> int:
    """Milliseconds since the epoch for a time in wire form (used as an index score)."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def new_id() -> str:
    """A fresh object id: URL-safe, unguessable, within ``ID_PATTERN``."""
    return secrets.token_urlsafe(12)


def is_slug(value: object) -> bool:
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _fields(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields (strings, booleans, None, tuples of strings): what
    ``dataclasses.asdict`` gives, without its deep copy (a quarter of a list request)."""
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    title: str
    summary: str
    body: tuple[str, ...]
    published_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {**_fields(self), "body": list(self.body)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Article:
        return cls(**{**obj, "body": tuple(obj["body"])})


@dataclass(frozen=True, slots=True)
class Brief:
    id: str
    text: str
    breaking: bool
    article: str | None
    published_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Brief:
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    article: str
    author: str
    text: str
    created_at: str
    hidden: bool = False
    # The top-level comment this one replies to (threads are one level deep).
    reply_to: str | None = None
    featured: bool = False
    # ``published`` or ``pending`` (held for moderation: readers never see it).
    status: str = "published"

    def to_json(self) -> dict[str, Any]:
        """The reader's view: a hidden comment is never sent, so ``hidden`` is not either
        (``status`` is ``pending`` only in the answer to its author and on the desk)."""
        obj = _fields(self)
        del obj["hidden"]
        return obj

    def to_record(self) -> dict[str, Any]:
        """The stored form, keeping ``hidden`` for the editors' record."""
        return _fields(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Comment:
        return cls(**obj)


# -- validation of client input -------------------------------------------------------------


def _check_fields(payload: object, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInput("expected a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(payload))
    if missing:
        raise InvalidInput(f"missing field(s): {', '.join(missing)}")
    return payload


def clean_text(value: object, field: str, max_chars: int, *, one_line: bool = False) -> str:
    """NFC-normalised, trimmed text of 1..max_chars code points, or InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty")
    if len(text) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters ({len(text)})")
    forbidden = _FORBIDDEN_ONE_LINE if one_line else _FORBIDDEN
    if forbidden.search(text):
        raise InvalidInput(f"{field} contains control or bidi-override characters")
    return text


def _clean_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false")
    return value


def _clean_article_ref(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_slug(value):
        raise InvalidInput("article must be an article slug ([a-z0-9-]{1,80}) or null")
    return value


def new_brief(payload: object, *, allow_id: bool = False) -> Brief:
    """A brief from a publish request: ``text``, optional ``breaking``, ``article`` (and ``id``)."""
    allowed = {"text", "breaking", "article"} | ({"id"} if allow_id else set())
    fields = _check_fields(payload, allowed, {"text"})
    brief_id = fields.get("id")
    if brief_id is not None and not is_id(brief_id):
        raise InvalidInput("id must match [A-Za-z0-9_-]{1,64}")
    moment = now_iso()
    return Brief(
        id=brief_id or new_id(),
        text=clean_text(fields["text"], "text", limits.BRIEF_TEXT_MAX, one_line=True),
        breaking=_clean_bool(fields.get("breaking", False), "breaking"),
        article=_clean_article_ref(fields.get("article")),
        published_at=moment,
        updated_at=moment,
    )


def corrected_brief(brief: Brief, payload: object) -> Brief:
    """``brief`` with a correction applied (any of ``text``, ``breaking``, ``article``)."""
    fields = _check_fields(payload, {"text", "breaking", "article"}, set())
    if not fields:
        raise InvalidInput("nothing to change: give text, breaking or article")
    changes: dict[str, Any] = {"updated_at": now_iso()}
    if "text" in fields:
        changes["text"] = clean_text(fields["text"], "text", limits.BRIEF_TEXT_MAX, one_line=True)
    if "breaking" in fields:
        changes["breaking"] = _clean_bool(fields["breaking"], "breaking")
    if "article" in fields:
        changes["article"] = _clean_article_ref(fields["article"])
    return replace(brief, **changes)


def new_comment(slug: str, payload: object) -> Comment:
    """A reader's comment: ``author``, ``text`` and optionally ``reply_to`` (a comment id,
    checked against the article's visible comments by storage)."""
    fields = _check_fields(payload, {"author", "text", "reply_to"}, {"author", "text"})
    reply_to = fields.get("reply_to")
    if reply_to == "":
        reply_to = None  # the no-JavaScript form sends an empty field for a new thread
    if reply_to is not None and not is_id(reply_to):
        raise InvalidInput("reply_to must be a comment id or null")
    return Comment(
        id=new_id(),
        article=slug,
        author=clean_text(fields["author"], "author", limits.AUTHOR_MAX, one_line=True),
        text=clean_text(fields["text"], "text", limits.COMMENT_TEXT_MAX),
        created_at=now_iso(),
        reply_to=reply_to,
    )


COMMENT_MODES = ("open", "premoderated", "closed")
REPORT_REASONS = ("spam", "abuse", "off_topic", "other")


def comment_mode(value: object) -> str:
    if value not in COMMENT_MODES:
        raise InvalidInput("comment_mode must be one of: " + ", ".join(COMMENT_MODES))
    return str(value)


def new_report(payload: object) -> tuple[str, str]:
    """A reader's report of a comment: its reason and optional note."""
    fields = _check_fields(payload, {"reason", "note"}, {"reason"})
    if fields["reason"] not in REPORT_REASONS:
        raise InvalidInput("reason must be one of: " + ", ".join(REPORT_REASONS))
    note = fields.get("note")
    if note is None or note == "":
        return fields["reason"], ""
    return fields["reason"], clean_text(note, "note", limits.REPORT_NOTE_MAX)


_LINK = re.compile(r"(?i)(?<![\w/.])(?:https?://|www\.)\S")


def count_links(text: str) -> int:
    return len(_LINK.findall(text))


def matches_blocklist(text: str, phrases: tuple[str, ...]) -> bool:
    """Whether ``text`` contains one of ``phrases`` as whole words, ignoring case."""
    lowered = text.casefold()
    for phrase in phrases:
        words = r"\s+".join(re.escape(w) for w in phrase.casefold().split())
        if words and re.search(rf"(?<!\w){words}(?!\w)", lowered):
            return True
    return False


def article_from_put(slug: str, payload: object, existing: Article | None) -> Article:
    """The article a PUT describes; ``published_at`` is kept from ``existing``.

    ``comment_mode`` may come along; it is not part of the article (see ``Content``)."""
    allowed = {"title", "summary", "body", "comment_mode"}
    fields = _check_fields(payload, allowed, {"title", "summary", "body"})
    body = fields["body"]
    if not isinstance(body, list):
        raise InvalidInput("body must be a list of paragraph strings")
    if len(body) > limits.ARTICLE_PARAGRAPHS_MAX:
        raise InvalidInput(f"body has more than {limits.ARTICLE_PARAGRAPHS_MAX} paragraphs")
    paragraphs = tuple(
        clean_text(p, f"body[{i}]", limits.ARTICLE_PARAGRAPH_MAX) for i, p in enumerate(body)
    )
    moment = now_iso()
    return Article(
        slug=slug,
        title=clean_text(fields["title"], "title", limits.ARTICLE_TITLE_MAX, one_line=True),
        summary=clean_text(fields["summary"], "summary", limits.ARTICLE_SUMMARY_MAX),
        body=paragraphs,
        published_at=existing.published_at if existing else moment,
        updated_at=moment,
    )
