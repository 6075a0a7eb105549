"""The Redis URL forms of LIVEFEED_REDIS_URL: Sentinel URLs parsed, masked in logs."""

from __future__ import annotations

import pytest

from livefeed.settings import mask_url
from livefeed.storage.connect import deployment, sentinel_target


def test_a_sentinel_url_names_its_sentinels_primary_credentials_db_and_tls() -> None:
    target = sentinel_target(
        "rediss+sentinel://editor:p%40ss@s1:26379,[::1]:26380/news%20desk?db=2&sentinel_password=x"
    )
    assert target.sentinels == (("s1", 26379), ("::1", 26380))
    assert (target.service, target.username, target.password) == ("news desk", "editor", "p@ss")
    assert (target.db, target.tls, target.sentinel_password) == (2, True, "x")
    plain = sentinel_target("redis+sentinel://127.0.0.1:26379/mymaster")
    assert (plain.username, plain.password, plain.db, plain.tls) == (None, None, 0, False)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379/",  # no primary name
        "redis+sentinel://s1/mymaster",  # no port
        "redis+sentinel://s1:26379,:1/mymaster",  # no host
        "redis+sentinel://s1:26379/mymaster?db=two",
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        sentinel_target(url)


def test_deployment_kind_and_masked_secrets() -> None:
    assert deployment("redis://h:6379/0") == "standalone"
    assert deployment("redis+cluster://h:7000") == "cluster"
    assert deployment("rediss+sentinel://h:26379/m") == "sentinel"
    masked = mask_url("redis+sentinel://u:secret@a:1,b:2/m?sentinel_password=hidden&db=1")
    assert "secret" not in masked and "hidden" not in masked
    assert masked.startswith("redis+sentinel://***@a:1,b:2/m?")
