"""Objects and their validation, event ids and SSE cursors: pure functions, no I/O."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

import pytest

from livefeed import limits, models
from livefeed.errors import InvalidInput
from livefeed.events import EventId, decode_cursor, encode_cursor
from livefeed.models import Article, Brief

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

# Bidi embeddings, overrides and isolates, and C0/C1 controls other than tab and newline.
REFUSED_EVERYWHERE = [
    "\x00",
    "\x07",
    "\x1b",
    "\r",
    "\x7f",
    "\x85",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]

# Every free-text field a reader or editor fills in, as a function of what is typed there.
TextField = Callable[[str], object]
TEXT_FIELDS: dict[str, TextField] = {
    "brief text": lambda text: models.new_brief({"text": text}),
    "comment text": lambda text: models.new_comment("a", {"author": "Ann", "text": text}),
    "comment author": lambda text: models.new_comment("a", {"author": text, "text": "hi"}),
}


@pytest.fixture(params=TEXT_FIELDS)
def text_field(request: pytest.FixtureRequest) -> TextField:
    """Each of ``TEXT_FIELDS`` in turn: a rule for text holds in every field."""
    return TEXT_FIELDS[request.param]


# -- text: NFC, trimming, length, whitespace, controls ---------------------------------------


def test_text_is_nfc_normalised_and_trimmed() -> None:
    brief = models.new_brief({"text": "  Cafe\u0301 opens\t \n"})
    assert brief.text == "Caf\u00e9 opens"


@pytest.mark.parametrize("blank", ["", " ", "\n", "\t \n ", "\u00a0", "\u3000 \u2003"])
def test_whitespace_only_text_is_invalid(blank: str, text_field: TextField) -> None:
    with pytest.raises(InvalidInput):
        text_field(blank)


def test_length_counts_code_points_after_nfc() -> None:
    # 500 decomposed "é" are 1000 code points as sent, 500 after NFC: within the limit.
    assert models.new_brief({"text": "e\u0301" * 500}).text == "\u00e9" * 500
    with pytest.raises(InvalidInput):
        models.new_brief({"text": "e\u0301" * 501})


def test_astral_characters_count_once() -> None:
    assert len(models.new_brief({"text": "\U0001f4f0" * 500}).text) == 500
    with pytest.raises(InvalidInput):
        models.new_brief({"text": "\U0001f4f0" * 501})


def test_brief_text_limit() -> None:
    assert len(models.new_brief({"text": "x" * 500}).text) == 500
    with pytest.raises(InvalidInput):
        models.new_brief({"text": "x" * 501})


def test_comment_limits() -> None:
    comment = models.new_comment(
        "a", {"author": "a" * limits.AUTHOR_MAX, "text": "t" * limits.COMMENT_TEXT_MAX}
    )
    assert len(comment.author) == 60
    assert len(comment.text) == 2000
    with pytest.raises(InvalidInput):
        models.new_comment("a", {"author": "a" * 61, "text": "t"})
    with pytest.raises(InvalidInput):
        models.new_comment("a", {"author": "a", "text": "t" * 2001})


def test_trimming_happens_before_the_length_check() -> None:
    assert models.new_brief({"text": "  " + "x" * 500 + "  "}).text == "x" * 500


@pytest.mark.parametrize("char", REFUSED_EVERYWHERE)
def test_control_and_bidi_characters_are_refused(char: str, text_field: TextField) -> None:
    with pytest.raises(InvalidInput):
        text_field(f"before {char} after")


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "\ud83d"])
def test_lone_surrogates_are_refused(surrogate: str, text_field: TextField) -> None:
    # JSON can spell them ("\ud800"), but they are not characters and cannot be stored.
    with pytest.raises(InvalidInput):
        text_field(f"before {surrogate} after")


def test_newline_is_allowed_in_comment_text_only() -> None:
    comment = models.new_comment("a", {"author": "Ann", "text": "line one\nline two"})
    assert comment.text == "line one\nline two"
    with pytest.raises(InvalidInput):
        models.new_brief({"text": "line one\nline two"})
    with pytest.raises(InvalidInput):
        models.new_comment("a", {"author": "Ann\nBob", "text": "hi"})


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_unicode_line_separators_are_refused_in_one_line_fields(separator: str) -> None:
    with pytest.raises(InvalidInput):
        models.new_brief({"text": f"a{separator}b"})
    with pytest.raises(InvalidInput):
        models.new_comment("a", {"author": f"A{separator}B", "text": "hi"})


def test_ordinary_unicode_is_kept() -> None:
    text = "Пожары в Канаде: 26 000 эвакуированы — «вилифицирует» 北京 🔥"
    assert models.new_brief({"text": text}).text == text


# -- fields and types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "x", "extra": 1},
        {"text": "x", "id": "my-id"},  # only ingest may choose the id
        {},
        {"breaking": True},
        "text",
        ["text"],
        None,
        {"text": 5},
        {"text": None},
        {"text": ["x"]},
        {"text": "x", "breaking": "yes"},
        {"text": "x", "breaking": 1},
        {"text": "x", "breaking": None},
        {"text": "x", "article": "Not A Slug"},
        {"text": "x", "article": 7},
        {"text": "x", "article": ""},
    ],
)
def test_invalid_brief_payloads_are_refused(payload: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        models.new_brief(payload)
    assert refused.value.status == 422
    assert refused.value.code == "invalid"
    assert refused.value.message


def test_new_brief_defaults_and_times() -> None:
    brief = models.new_brief({"text": "x"})
    assert brief.breaking is False
    assert brief.article is None
    assert models.is_id(brief.id)
    assert ISO_MS.fullmatch(brief.published_at)
    assert brief.updated_at == brief.published_at
    full = models.new_brief({"text": "x", "breaking": True, "article": "xi-putin"})
    assert (full.breaking, full.article) == (True, "xi-putin")
    assert models.new_brief({"text": "x", "article": None}).article is None


def test_ingest_may_choose_the_brief_id() -> None:
    assert models.new_brief({"text": "x", "id": "wire-42"}, allow_id=True).id == "wire-42"
    with pytest.raises(InvalidInput):
        models.new_brief({"text": "x", "id": "not an id"}, allow_id=True)


@pytest.mark.parametrize(
    "payload",
    [
        {"author": "Ann"},
        {"text": "hi"},
        {"author": "Ann", "text": "hi", "created_at": "2020-01-01T00:00:00.000Z"},
        {"author": 5, "text": "hi"},
        {"author": "Ann", "text": False},
        [],
    ],
)
def test_invalid_comment_payloads_are_refused(payload: object) -> None:
    with pytest.raises(InvalidInput):
        models.new_comment("a", payload)


def test_new_comment() -> None:
    comment = models.new_comment("my-article", {"author": " Ann ", "text": " hi "})
    assert (comment.article, comment.author, comment.text) == ("my-article", "Ann", "hi")
    assert ISO_MS.fullmatch(comment.created_at)
    assert models.is_id(comment.id)
    assert "hidden" not in comment.to_json()
    assert comment.to_record()["hidden"] is False


# -- slugs and ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["a", "0", "xi-putin-moscow-talks", "-", "x" * 80])
def test_is_slug_accepts(slug: str) -> None:
    assert models.is_slug(slug)


@pytest.mark.parametrize(
    "slug", ["", "A", "Not-A-Slug", "a_b", "a b", "a/b", "é", "x" * 81, "a\n", None, 5, ["a"]]
)
def test_is_slug_refuses(slug: object) -> None:
    assert not models.is_slug(slug)


@pytest.mark.parametrize("value", ["a", "A-z_09", "x" * 64, "demo-1"])
def test_is_id_accepts(value: str) -> None:
    assert models.is_id(value)


@pytest.mark.parametrize("value", ["", "x" * 65, "a.b", "a b", "a/b", "é", "a\n", None, 1])
def test_is_id_refuses(value: object) -> None:
    assert not models.is_id(value)


def test_new_ids_are_ids_and_unique() -> None:
    ids = {models.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(models.is_id(i) for i in ids)


# -- corrections and article updates ---------------------------------------------------------

OLD = "2020-01-02T03:04:05.678Z"


def _old_brief() -> Brief:
    return Brief("b1", "Quary collapse", False, None, OLD, OLD)


def test_corrected_brief_keeps_published_at_and_changes_updated_at() -> None:
    brief = models.corrected_brief(_old_brief(), {"text": " Quarry collapse "})
    assert brief.id == "b1"
    assert brief.text == "Quarry collapse"
    assert brief.published_at == OLD
    assert brief.updated_at > OLD
    assert ISO_MS.fullmatch(brief.updated_at)


def test_corrected_brief_changes_only_what_is_given() -> None:
    brief = models.corrected_brief(_old_brief(), {"breaking": True, "article": "a"})
    assert (brief.text, brief.breaking, brief.article) == ("Quary collapse", True, "a")
    assert models.corrected_brief(brief, {"article": None}).article is None


@pytest.mark.parametrize(
    "payload",
    [{}, {"id": "b2"}, {"published_at": OLD}, {"text": ""}, {"text": "x" * 501}, {"breaking": 0}],
)
def test_invalid_corrections_are_refused(payload: object) -> None:
    with pytest.raises(InvalidInput):
        models.corrected_brief(_old_brief(), payload)


ARTICLE = {"title": " Xi and Putin ", "summary": "Talks.", "body": ["One.", " Two. "]}


def test_article_from_put_new() -> None:
    article = models.article_from_put("xi", ARTICLE, None)
    assert article.slug == "xi"
    assert article.title == "Xi and Putin"
    assert article.body == ("One.", "Two.")
    assert ISO_MS.fullmatch(article.published_at)
    assert article.updated_at == article.published_at
    assert article.to_json()["body"] == ["One.", "Two."]


def test_article_from_put_keeps_published_at_of_the_existing_article() -> None:
    existing = Article("xi", "Old", "Old.", ("Old.",), OLD, OLD)
    article = models.article_from_put("xi", ARTICLE, existing)
    assert article.published_at == OLD
    assert article.updated_at > OLD
    assert article.title == "Xi and Putin"


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "t", "summary": "s"},
        {"title": "t", "summary": "s", "body": ["p"], "slug": "other"},
        {"title": "t", "summary": "s", "body": "p"},
        {"title": "t", "summary": "s", "body": [1]},
        {"title": "t", "summary": "s", "body": [""]},
        {"title": "", "summary": "s", "body": []},
        {"title": "a\nb", "summary": "s", "body": []},
        {"title": "t" * 301, "summary": "s", "body": []},
        {"title": "t", "summary": "s", "body": ["p"] * 201},
    ],
)
def test_invalid_articles_are_refused(payload: object) -> None:
    with pytest.raises(InvalidInput):
        models.article_from_put("xi", payload, None)


def test_objects_round_trip_through_json() -> None:
    brief = _old_brief()
    assert Brief.from_json(json.loads(json.dumps(brief.to_json()))) == brief
    article = Article("xi", "T", "S", ("p",), OLD, OLD)
    assert Article.from_json(json.loads(json.dumps(article.to_json()))) == article


def test_wire_times_are_utc_with_milliseconds() -> None:
    assert ISO_MS.fullmatch(models.now_iso())
    assert models.time_ms("1970-01-01T00:00:01.500Z") == 1500


# -- event ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["abc12345-1717171717171-0", "a-0-0", "z9-1-99"])
def test_event_id_round_trips(text: str) -> None:
    event_id = EventId.parse(text)
    assert event_id is not None
    assert str(event_id) == text
    assert EventId.parse(str(event_id)) == event_id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "garbage",
        "abc-1",
        "abc-1-2-3",
        "ABC-1-2",
        "abc--1-2",
        "abc-x-2",
        "abc-1-2\n",
        " abc-1-2",
        "a" * 17 + "-1-2",
        "abc-" + "1" * 21 + "-2",
        "abc-1-" + "2" * 200,
        None,
        5,
        ["abc-1-2"],
    ],
)
def test_event_id_rejects_garbage(text: object) -> None:
    assert EventId.parse(text) is None


def test_event_ids_order_numerically_within_an_epoch() -> None:
    a, b, c = (EventId.parse(t) for t in ("e-9-0", "e-10-0", "e-10-2"))
    assert a is not None and b is not None and c is not None
    assert a < b < c
    assert EventId.origin("e").is_origin
    assert EventId.origin("e") < a


# -- SSE cursors -----------------------------------------------------------------------------


def test_cursor_round_trips() -> None:
    positions = {"briefs": "abc-1-0", "comments:xi-putin": "def-2-3", "article:xi": "g-0-0"}
    cursor = encode_cursor(positions)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), "a cursor must be URL- and header-safe"
    assert decode_cursor(cursor) == positions
    assert decode_cursor(encode_cursor({})) == {}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        "é",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(b"[1, 2]"),
        _b64(b'"briefs"'),
        _b64(b'{"weather": "abc-1-0"}'),
        _b64(b'{"comments:Bad Slug": "abc-1-0"}'),
        _b64(b'{"briefs": 5}'),
        _b64(b'{"briefs": null}'),
        "A" * (limits.SSE_CURSOR_MAX + 1),
    ],
)
def test_cursor_rejects_garbage(cursor: str) -> None:
    assert decode_cursor(cursor) is None
