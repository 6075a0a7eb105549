"""Property-based fuzzing of every parser and validator: only our validation errors, ever."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from livefeed import models
from livefeed.errors import LivefeedError
from livefeed.events import EventId, decode_cursor, is_topic
from livefeed.ingest import InvalidPayload, parse_payload
from livefeed.transports.frames import parse_frame

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["text", "breaking", "article", "id", "author", "title", "summary", "body", "x"]
)
OBJECTS = st.dictionaries(FIELDS, JSON, max_size=6)
ANY_TEXT = st.text(alphabet=st.characters(codec=None), max_size=600)


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, JSON.map(json.dumps), OBJECTS.map(json.dumps)))
def test_frames(text: str) -> None:
    try:
        frame = parse_frame(text)
    except LivefeedError as exc:
        assert exc.code and exc.message
    else:
        assert frame.type in {"subscribe", "unsubscribe", "ping"}
        assert frame.type == "ping" or is_topic(frame.topic)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, OBJECTS))
def test_api_bodies(payload: object) -> None:
    for validate in (
        lambda: models.new_brief(payload),
        lambda: models.new_brief(payload, allow_id=True),
        lambda: models.new_comment("a", payload),
        lambda: models.article_from_put("a", payload, None),
    ):
        try:
            value = validate()
        except LivefeedError as exc:
            assert exc.status in {400, 413, 422}
        else:
            # Whatever passes can be stored: UTF-8 encodable JSON.
            json.dumps(value.to_json(), ensure_ascii=False).encode()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), OBJECTS.map(lambda o: json.dumps(o).encode())))
def test_ingest_payloads(raw: bytes) -> None:
    try:
        brief = parse_payload(raw)
    except InvalidPayload as exc:
        assert str(exc)
    else:
        assert 1 <= len(brief.text) <= 500


@settings(max_examples=500, deadline=None)
@given(st.one_of(ANY_TEXT, st.integers(), st.none(), st.lists(st.text())))
def test_since_ids_cursors_and_topics(value: object) -> None:
    parsed = EventId.parse(value)
    assert parsed is None or EventId.parse(str(parsed)) == parsed
    if isinstance(value, str):
        cursor = decode_cursor(value)
        assert cursor is None or all(is_topic(t) for t in cursor)
    assert is_topic(value) in {True, False}
