"""Event types are defined once, in ``livefeed/events.py``; the browser's list is generated.

EventSource fires only the record names a page listens for, so a type missing from the
browser's list would silently never reach an SSE reader: these tests keep the generated
module, the renderers and ``events.py`` in step.
"""

from __future__ import annotations

import re

from livefeed import events
from livefeed.web.paths import STATIC_DIR

GENERATED = STATIC_DIR / "live" / "event-types.js"
REGENERATE = "python -m livefeed.events > static/live/event-types.js"
# A string literal in the browser code that may name an event type, e.g. "brief.published".
_QUOTED = re.compile(r"""(["'])([a-z]+\.[a-z_]+)\1""")


def _hand_written_js() -> dict[str, str]:
    return {
        path.relative_to(STATIC_DIR).as_posix(): path.read_text()
        for path in sorted(STATIC_DIR.rglob("*.js"))
        if path != GENERATED
    }


def test_the_browsers_event_types_are_generated_from_events_py() -> None:
    assert GENERATED.read_text() == events.browser_module(), (
        f"{GENERATED} differs from livefeed/events.py: from the repository root run `{REGENERATE}`"
    )


def test_every_event_type_constant_is_listed() -> None:
    constants = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+\.[a-z_]+", value)
    }
    assert constants - set(events.EVENT_TYPES) == set(), "add them to events.EVENT_TYPES"


def test_sse_readers_listen_for_every_event_type() -> None:
    assert set(events.EVENT_TYPES) <= set(events.SSE_RECORD_TYPES)
    assert events.SUBSCRIBED in events.SSE_RECORD_TYPES


def test_no_hand_written_js_names_an_event_type_events_py_does_not_know() -> None:
    nouns = {event_type.split(".")[0] for event_type in events.EVENT_TYPES}
    unknown = {
        f"{name}: {text}"
        for name, source in _hand_written_js().items()
        for _, text in _QUOTED.findall(source)
        if text.split(".")[0] in nouns and text not in events.EVENT_TYPES
    }
    assert unknown == set(), "a typo, or a type missing from events.EVENT_TYPES"


def test_the_reader_pages_render_every_event_type() -> None:
    renderer = (STATIC_DIR / "live" / "main.js").read_text()
    missing = [t for t in events.EVENT_TYPES if f'"{t}":' not in renderer]
    assert missing == [], "give each a handler in the `apply` map of static/live/main.js"
