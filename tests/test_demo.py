"""The demo content: page.txt's article and its five "Read next" briefs, loaded once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from livefeed.storage.content import Content
from livefeed.storage.demo import brief_times, load_demo
from tests.conftest import LiveServer
from tests.helpers import auth

SLUG = "xi-putin-moscow-talks"

# The "Read next" column of page.txt, as it reads there: newest first.
READ_NEXT = [
    (
        "14:11",
        "A celebration of Turkish cuisine and friendship took place in Karachi on Sunday as the "
        "Turkish Consulate hosted a World Breakfast Day event, sharing traditional flavours with "
        "a distinguished Pakistani audience.",
    ),
    (
        "13:18",
        "More than 500 people were arrested and two fatalities reported following chaotic "
        "celebrations across France after Paris Saint-Germain's historic Champions League "
        "victory, according to the interior ministry.",
    ),
    (
        "12:50",
        "Wildfires in western and central Canada have triggered the evacuation of more than "
        "26,000 people, with provinces including Manitoba, Saskatchewan and Alberta facing major "
        "threats.",
    ),
    (
        "12:31",
        "Indonesian rescuers are continuing their efforts to locate eight people still missing "
        "after a quarry collapse in West Java left at least 17 dead and six injured, with "
        "authorities warning of ongoing landslide risks.",
    ),
    (
        "11:25",
        "China has issued a formal protest against the United States over recent remarks by "
        "Defence Secretary Pete Hegseth, accusing Washington of \u201cvilifying\u201d Beijing and "
        "promoting confrontation in the Indo-Pacific.",
    ),
]
CLOCK = [t for t, _ in READ_NEXT]
SUMMARY = (
    "Chinese President Xi Jinping and Russian President Vladimir Putin held talks in Moscow, "
    "emphasizing their strategic partnership and cooperation amid ongoing global tensions."
)


def local_today_at(hour: int, minute: int, second: int = 0) -> datetime:
    return (
        datetime.now().astimezone().replace(hour=hour, minute=minute, second=second, microsecond=0)
    )


def local_clock(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%H:%M")


@pytest.fixture
def content(live_server: LiveServer) -> Content:
    store: Content = live_server.services.content
    return store


async def listed(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.get("/api/briefs")).json()["items"]
    return items


# -- loading ---------------------------------------------------------------------------------


async def test_load_demo_twice_publishes_the_five_briefs_once(
    content: Content, api: httpx.AsyncClient
) -> None:
    assert await load_demo(content) == 5
    first = await api.get("/api/briefs")
    assert await load_demo(content) == 0
    second = await api.get("/api/briefs")
    assert second.json() == first.json(), "a second load must change nothing, not even events"
    briefs = second.json()["items"]
    assert [b["text"] for b in briefs] == [text for _, text in READ_NEXT]
    published = [b["published_at"] for b in briefs]
    assert published == sorted(published, reverse=True)
    assert all(b["breaking"] is False for b in briefs)
    now = datetime.now(UTC)
    moments = [datetime.fromisoformat(b["published_at"].replace("Z", "+00:00")) for b in briefs]
    for brief, moment in zip(briefs, moments, strict=True):
        assert moment <= now, f"a demo brief is in the future: {brief}"
    # On the latest day none of them is in the future: the newest is under a day old (the
    # oldest may be more, between the earliest and the latest brief's time of day).
    assert now - max(moments) < timedelta(days=1)


async def test_the_briefs_carry_their_times_of_day(
    content: Content, api: httpx.AsyncClient
) -> None:
    now = local_today_at(15, 0)
    assert await load_demo(content, now=now) == 5
    briefs = await listed(api)
    assert [local_clock(b["published_at"]) for b in briefs] == CLOCK
    assert all(local_clock(b["updated_at"]) == local_clock(b["published_at"]) for b in briefs)
    days = {
        datetime.fromisoformat(b["published_at"].replace("Z", "+00:00")).astimezone().date()
        for b in briefs
    }
    assert days == {now.date()}


async def test_the_demo_article_exists(content: Content, api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/api/articles/{SLUG}")).status_code == 404
    await load_demo(content)
    response = await api.get(f"/api/articles/{SLUG}")
    assert response.status_code == 200
    article = response.json()
    assert article["slug"] == SLUG
    assert article["title"]
    assert article["summary"] == SUMMARY
    assert len(article["body"]) == 3
    assert article["body"][0].startswith("Russian President Vladimir Putin hosted")
    comments = await api.get(f"/api/articles/{SLUG}/comments")
    assert comments.json()["items"] == [], "the demo has no comments"


async def test_a_retracted_demo_brief_stays_retracted(
    live_server: LiveServer, content: Content, api: httpx.AsyncClient
) -> None:
    await load_demo(content)
    wildfires = next(b for b in await listed(api) if b["text"].startswith("Wildfires"))
    response = await api.delete(f"/api/briefs/{wildfires['id']}", headers=auth(live_server.token))
    assert response.status_code == 204
    assert await load_demo(content) == 0
    texts = [b["text"] for b in await listed(api)]
    assert len(texts) == 4
    assert wildfires["text"] not in texts


async def test_an_editors_changes_to_the_demo_article_are_kept(
    live_server: LiveServer, content: Content, api: httpx.AsyncClient
) -> None:
    await load_demo(content)
    edited = {"title": "Edited title", "summary": "Edited.", "body": ["Edited."]}
    response = await api.put(f"/api/articles/{SLUG}", json=edited, headers=auth(live_server.token))
    assert response.status_code == 200
    await load_demo(content)
    assert (await api.get(f"/api/articles/{SLUG}")).json()["title"] == "Edited title"


async def test_a_corrected_demo_brief_keeps_its_correction(
    live_server: LiveServer, content: Content, api: httpx.AsyncClient
) -> None:
    await load_demo(content)
    newest = (await listed(api))[0]
    response = await api.patch(
        f"/api/briefs/{newest['id']}", json={"breaking": True}, headers=auth(live_server.token)
    )
    assert response.status_code == 200
    await load_demo(content)
    assert (await listed(api))[0] == response.json()


async def test_serve_with_demo_loads_it_once(live_server: LiveServer) -> None:
    demo = LiveServer(live_server.settings.with_(demo=True))
    await demo.start()
    try:
        async with demo.client() as client:
            first = (await client.get("/api/briefs")).json()
            assert [b["text"] for b in first["items"]] == [text for _, text in READ_NEXT]
        await demo.restart()
        async with demo.client() as client:
            assert (await client.get("/api/briefs")).json() == first
            assert (await client.get(f"/api/articles/{SLUG}")).status_code == 200
    finally:
        await demo.stop()


# -- brief_times -----------------------------------------------------------------------------


def assert_ordered_like_the_clock(moments: list[datetime]) -> None:
    assert [m.strftime("%H:%M") for m in moments] == CLOCK
    assert moments == sorted(moments, reverse=True)


def test_brief_times_after_the_last_brief_are_today() -> None:
    now = local_today_at(15, 0)
    moments = brief_times(CLOCK, now)
    assert_ordered_like_the_clock(moments)
    assert {m.date() for m in moments} == {now.date()}
    assert all(m <= now for m in moments)


def test_brief_times_before_the_last_brief_are_yesterday() -> None:
    now = local_today_at(12, 0)  # 12:31, 12:50, 13:18 and 14:11 would be in the future
    moments = brief_times(CLOCK, now)
    assert_ordered_like_the_clock(moments)
    assert {m.date() for m in moments} == {now.date() - timedelta(days=1)}
    assert all(m <= now for m in moments)


@pytest.mark.parametrize(
    ("at", "today"),
    [
        (time(0, 0), False),
        (time(11, 24, 59), False),
        (time(14, 10, 59), False),
        (time(14, 11), True),
        (time(14, 11, 1), True),
        (time(23, 59, 59), True),
    ],
)
def test_brief_times_are_never_in_the_future(at: time, today: bool) -> None:
    now = local_today_at(at.hour, at.minute, at.second)
    moments = brief_times(CLOCK, now)
    assert all(m <= now for m in moments), (now, moments)
    assert_ordered_like_the_clock(moments)
    expected = now.date() if today else now.date() - timedelta(days=1)
    assert {m.date() for m in moments} == {expected}


def test_brief_times_take_any_timezone_for_now() -> None:
    now = local_today_at(15, 0)
    assert brief_times(CLOCK, now.astimezone(UTC)) == brief_times(CLOCK, now)
