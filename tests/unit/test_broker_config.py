"""``role`` and ``broker.*``: the URL forms, the combinations that stop the start, and the
command line's ``--role``."""

from __future__ import annotations

import pytest

from certstream.cli import _parser, resolve_settings
from certstream.config import load_settings
from certstream.core.brokerurl import SENTINEL_PORT, parse_broker_url
from certstream.errors import ConfigError


def test_a_plain_redis_url() -> None:
    a = parse_broker_url("redis://user:secret@cache.example:6380/3")
    assert (a.sentinels, a.db) == ((), 3)
    assert a.describe() == "redis://cache.example:6380/3"  # no password in logs


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_db() -> None:
    a = parse_broker_url("redis+sentinel://:pw@s1:26380,s2,[::1]:7000/mymaster/2")
    assert a.sentinels == (("s1", 26380), ("s2", SENTINEL_PORT), ("::1", 7000))
    assert (a.service, a.db, a.password, a.username) == ("mymaster", 2, "pw", None)
    assert a.describe() == "redis+sentinel://s1:26380,s2:26379,::1:7000/mymaster/2"


@pytest.mark.parametrize("url", [
    "http://h:1/0", "redis://", "redis://h:1/x", "redis+sentinel://h:1", "redis+sentinel:///m",
    "redis+sentinel://h:99999/m", "redis+sentinel://h/m/x", "unix://",
])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_broker_url(url)


def env(**kw: str) -> dict[str, str]:
    return {f"CERTSTREAM_{k.upper()}": v for k, v in kw.items()}


def test_the_default_is_one_machine_without_a_broker() -> None:
    s = load_settings({})
    assert (s.role, s.broker.url, s.broker.retention) == ("all", "", 10000)


def test_edge_and_ingest_take_the_broker_from_the_environment() -> None:
    s = load_settings(env(role="edge", broker_url="redis+sentinel://s1/m/0",
                          broker_retention="5000", broker_lease_ms="3000"))
    assert (s.role, s.broker.retention, s.broker.lease_ms) == ("edge", 5000, 3000)


@pytest.mark.parametrize(("values", "key"), [
    ({"role": "edge"}, "broker.url"),
    ({"role": "ingest"}, "broker.url"),
    ({"broker_url": "redis://h/0"}, "role"),
    ({"role": "leader", "broker_url": "redis://h/0"}, "role"),
    ({"role": "edge", "broker_url": "memcached://h"}, "broker.url"),
    ({"role": "edge", "broker_url": "redis://h/0", "broker_retention": "10"},
     "broker.retention"),
])
def test_a_bad_combination_stops_the_start_naming_the_key(values: dict[str, str],
                                                          key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env(**values))
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_an_edge_may_share_the_ingest_s_config_file_with_its_logs() -> None:
    s = load_settings(env(role="edge", broker_url="redis://h/0",
                          custom_logs='[{"name": "a", "url": "https://log.example/"}]'))
    assert s.role == "edge" and len(s.custom_logs) == 1  # followed by the ingest only


def test_the_command_line_role_wins_and_is_checked_like_any_value() -> None:
    args = _parser().parse_args(["--role", "edge"])
    with pytest.raises(ConfigError) as err:
        resolve_settings(args)
    assert err.value.key == "broker.url"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--role", "primary"])
