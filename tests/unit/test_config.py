"""Settings: defaults, where the file is found, env over file, and one clear line per bad value."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from tests.support.data import ROOT

from certstream import config
from certstream.config import (
    ENV_NAMES,
    RESOLVED_ENV,
    CustomLog,
    Settings,
    StaticLog,
    load_settings,
    settings_to_env,
)
from certstream.config.convert import unknown_env_names
from certstream.errors import ConfigError

# The key of a real static-ct log, as base64 SPKI DER (the form the log lists use).
SPKI = "".join(
    line for line in (ROOT / "tests/fixtures/ct/static-ct/navigli2025h2/log-public-key.pem")
    .read_text().splitlines() if not line.startswith("-----")
)


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No stray ./config.yaml and no /etc file may leak into these tests.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS",
                        ("config.yaml", "config.yml", str(tmp_path / "etc-config.yaml")))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.host, s.port, s.log_level, s.workers, s.buffer_size) == ("0.0.0.0", 8080, "info", 1,
                                                                       1000)
    assert s.protocols.api is False and s.protocols.sse is True
    assert s.output.profile == "go"
    assert s.ct_log.fetch_concurrency == 4 and s.ct_log.states == ("usable", "qualified",
                                                                   "readonly")
    assert all(u.startswith("https://") for u in s.ct_log.log_list_urls)
    assert "certstream" in s.ct_log.user_agent
    assert s.ct_log.max_body_bytes == 16 * 1024 * 1024
    assert s.dedup.capacity == 200000 and s.dedup.ttl_secs == 900
    assert s.custom_logs == () and s.static_logs == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_example_file_is_complete_and_equals_defaults(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "certstream.config"):
        s = load_settings({}, path=str(ROOT / "config.example.yaml"))
    assert s == Settings()
    assert not caplog.records, "the example names a key the schema does not know"


def test_every_env_name_points_at_a_setting() -> None:
    s = Settings()
    for name, path in ENV_NAMES.items():
        assert name.startswith("CERTSTREAM_")
        node: Any = s
        for part in path.split("."):
            node = getattr(node, part)  # raises if the path is wrong
    # Every leaf has its derived name.
    assert ENV_NAMES["CERTSTREAM_CT_LOG_BATCH_SIZE"] == "ct_log.batch_size"
    assert ENV_NAMES["CERTSTREAM_DEDUP_TTL_SECS"] == "dedup.ttl_secs"
    assert ENV_NAMES["CERTSTREAM_OUTPUT_PROFILE"] == "output.profile"


def test_search_order(tmp_path: Path) -> None:
    etc = write(tmp_path / "etc-config.yaml", "port: 1004\n")
    assert load_settings({}).port == 1004
    write(tmp_path / "config.yml", "port: 1003\n")
    assert load_settings({}).port == 1003
    write(tmp_path / "config.yaml", "port: 1002\n")
    assert load_settings({}).port == 1002
    explicit = write(tmp_path / "other.yaml", "port: 1001\n")
    assert load_settings({"CERTSTREAM_CONFIG": explicit}).port == 1001
    # An explicit path beats $CERTSTREAM_CONFIG.
    assert load_settings({"CERTSTREAM_CONFIG": explicit}, path=etc).port == 1004


def test_env_beats_file_and_rust_names_work(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "port: 9000\nprotocols: {sse: true}\n"
                 "ct_log: {batch_size: 10, states: [usable]}\n")
    s = load_settings({
        "CERTSTREAM_PORT": "9001",
        "CERTSTREAM_SSE_ENABLED": "0",
        "CERTSTREAM_STREAM_DOMAINS_ONLY_ENABLED": "no",
        "CERTSTREAM_PROTOCOLS_API": "yes",
        "CERTSTREAM_CT_LOG_BATCH_SIZE": " 64 ",
        "CERTSTREAM_DEDUP_TTL_SECS": "60",
        "CERTSTREAM_OUTPUT_PROFILE": "rust",
        "CERTSTREAM_WEBSOCKET_PING_INTERVAL_SECS": "0.5",
    }, path=path)
    assert s.port == 9001
    assert s.protocols.sse is False and s.protocols.api is True
    assert s.streams.domains_only is False and s.streams.full is True
    assert s.ct_log.batch_size == 64 and s.ct_log.states == ("usable",)  # file value kept
    assert s.dedup.ttl_secs == 60
    assert s.output.profile == "rust"
    assert s.websocket.ping_interval_secs == 0.5


def test_lists_and_maps_from_env() -> None:
    s = load_settings({
        "CERTSTREAM_CT_LOG_LOG_LIST_URLS": "http://127.0.0.1:1/a.json, https://x.example/b.json",
        "CERTSTREAM_CT_LOG_STATES": "usable,retired",
        "CERTSTREAM_AUTH_ENABLED": "true",
        "CERTSTREAM_AUTH_TOKENS": "t1,t2",
        "CERTSTREAM_CT_LOG_OPERATOR_RATE_LIMITS": "Google=200, Let's Encrypt=0",
        "CERTSTREAM_CONNECTION_LIMIT_PER_IP_LIMIT": "5",
    })
    assert s.ct_log.log_list_urls == ("http://127.0.0.1:1/a.json", "https://x.example/b.json")
    assert s.ct_log.states == ("usable", "retired")
    assert s.auth.tokens == ("t1", "t2")
    assert s.ct_log.operator_rate_limits == {"Google": 200, "Let's Encrypt": 0}
    assert s.connection_limit.per_ip_limit == 5
    # An empty list turns discovery off; an empty optional is None.
    s = load_settings({"CERTSTREAM_CT_LOG_LOG_LIST_URLS": "",
                       "CERTSTREAM_CONNECTION_LIMIT_PER_IP_LIMIT": ""})
    assert s.ct_log.log_list_urls == ()
    assert s.connection_limit.per_ip_limit is None


def test_custom_and_static_logs(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", f"""
custom_logs:
  - name: Replay A
    url: http://127.0.0.1:18000/a/
    start_index: 5
  - {{name: B, url: "https://ct.example/b", operator: Ex}}
static_logs:
  - name: Tiled
    url: https://mon.example.com/2026h1/
    key: {SPKI}
  - name: Google style
    url: https://storage.example/tiles/x2026/
    log_origin: x2026.ct.example
    start_index: 0
""")
    s = load_settings({}, path=path)
    assert s.custom_logs == (
        CustomLog("Replay A", "http://127.0.0.1:18000/a/", 5, ""),
        CustomLog("B", "https://ct.example/b", None, "Ex"),
    )
    t1, t2 = s.static_logs
    assert t1.key == SPKI and t1.start_index is None
    assert t1.log_origin == "mon.example.com/2026h1"  # default: no scheme, no trailing slash
    assert t2.log_origin == "x2026.ct.example" and t2.start_index == 0 and t2.key is None
    # From the environment, as JSON.
    s = load_settings({"CERTSTREAM_STATIC_LOGS":
                       '[{"name": "T", "url": "http://127.0.0.1:9/t"}]'})
    assert s.static_logs == (StaticLog("T", "http://127.0.0.1:9/t", log_origin="127.0.0.1:9/t"),)


def test_unknown_keys_warn_and_still_start(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    # Keys of certstream-server-rust's config (certstream-server-go's make a file Go's
    # format, tests/unit/test_goformat.py).
    path = write(tmp_path / "c.yaml", """
port: 8081
ct_log:
  batch_size: 32
  catalog_authority_overrides: {}
static_logs:
  - {name: T, url: "https://t.example/", expected_log_id: abc, batch_size: 5}
""")
    with caplog.at_level(logging.WARNING, "certstream.config"):
        s = load_settings({}, path=path)
    assert s.port == 8081 and s.ct_log.batch_size == 32 and len(s.static_logs) == 1
    text = " ".join(r.getMessage() for r in caplog.records)
    for key in ("ct_log.catalog_authority_overrides",
                "static_logs[0].expected_log_id", "static_logs[0].batch_size"):
        assert key in text
    assert "port" not in text.replace("listen_port", "")


BAD: list[tuple[str, dict[str, str], str, str]] = [
    # (yaml, env, key named in the error, value shown)
    ("port: 0", {}, "port", "0"),
    ("port: 65536", {}, "port", "65536"),
    ("", {"CERTSTREAM_PORT": "http"}, "port", "http"),
    ("workers: 0", {}, "workers", "0"),
    ("buffer_size: -1", {}, "buffer_size", "-1"),
    ("buffer_bytes: 1000", {}, "buffer_bytes", "1000"),
    ("", {"CERTSTREAM_BUFFER_BYTES": "lots"}, "buffer_bytes", "lots"),
    ("", {"CERTSTREAM_WS_ENABLED": "maybe"}, "protocols.websocket", "maybe"),
    ("protocols: {sse: 3}", {}, "protocols.sse", "3"),
    ("ct_log: {fetch_concurrency: 17}", {}, "ct_log.fetch_concurrency", "17"),
    ("", {"CERTSTREAM_CT_LOG_FETCH_CONCURRENCY": "0"}, "ct_log.fetch_concurrency", "0"),
    ("ct_log: {states: [usable, bogus]}", {}, "ct_log.states[1]", "bogus"),
    ("ct_log: {log_list_urls: [ftp://x.example/l.json]}", {}, "ct_log.log_list_urls[0]",
     "ftp://x.example/l.json"),
    ("ct_log: {log_list_urls: https://x.example/l.json}", {}, "ct_log.log_list_urls",
     "https://x.example/l.json"),
    ("ct_log: {static_ct_checkpoint_signature: maybe}", {},
     "ct_log.static_ct_checkpoint_signature", "maybe"),
    ("ct_log: {sth_signature: strict}", {}, "ct_log.sth_signature", "strict"),
    ("ct_log: {operator_rate_limits: {Google: -1}}", {}, "ct_log.operator_rate_limits.Google",
     "-1"),
    ("ct_log: {retry_initial_delay_ms: 5000, retry_max_delay_ms: 10}", {},
     "ct_log.retry_max_delay_ms", "10"),
    ("ct_log: 5", {}, "ct_log", "5"),
    ("", {"CERTSTREAM_OUTPUT_PROFILE": "elixir"}, "output.profile", "elixir"),
    ("websocket: {slow_client_close_code: 1006}", {}, "websocket.slow_client_close_code", "1006"),
    ("websocket: {ping_interval_secs: abc}", {}, "websocket.ping_interval_secs", "abc"),
    ("tls_cert: /x.pem", {}, "tls_key", "None"),
    ("auth: {enabled: true}", {}, "auth.tokens", "[]"),
    ("connection_limit: {per_ip_limit: 0}", {}, "connection_limit.per_ip_limit", "0"),
    ("log_level: loud", {}, "log_level", "loud"),
    ("custom_logs: [{name: A}]", {}, "custom_logs[0].url", "None"),
    ("custom_logs: [{name: A, url: 'ct.example/a'}]", {}, "custom_logs[0].url", "ct.example/a"),
    ("custom_logs: [{name: A, url: 'https://a.example/', start_index: -1}]", {},
     "custom_logs[0].start_index", "-1"),
    ("custom_logs: [{name: A, url: 'https://a.example/', key: 'not base64!'}]", {},
     "custom_logs[0].key", "not base64!"),
    ("static_logs: [{name: T, url: 'https://t.example/', key: 'not base64!'}]", {},
     "static_logs[0].key", "not base64!"),
    ("", {"CERTSTREAM_CUSTOM_LOGS": "[{oops"}, "custom_logs", "[{oops"),
    ("", {"CERTSTREAM_CT_LOG_OPERATOR_RATE_LIMITS": "Google"}, "ct_log.operator_rate_limits",
     "Google"),
    ("rate_limit: {requests_per_sec: 0}", {}, "rate_limit.requests_per_sec", "0"),
    ("", {"CERTSTREAM_RATE_LIMIT_BURST": "-1"}, "rate_limit.burst", "-1"),
    ("rate_limit: {max_tokens: 0.5}", {}, "rate_limit.max_tokens", "0.5"),
    ("rate_limit: {refill_rate: 0}", {}, "rate_limit.refill_rate", "0"),
    ("rate_limit: {requests_per_sec: 1, refill_rate: 2}", {}, "rate_limit.requests_per_sec",
     "1"),
    ("", {"CERTSTREAM_RATE_LIMIT_WINDOW_MAX_REQUESTS": "0"}, "rate_limit.window_max_requests",
     "0"),
    ("ingest: {mode: thread}", {}, "ingest.mode", "thread"),
    ("workers: 2\ningest: {mode: embedded}", {}, "ingest.mode", "embedded"),
    ("api: {cache_max_bytes: 1000}", {}, "api.cache_max_bytes", "1000"),
    ("port: [1, 2", {}, "config", "c.yaml"),
    ("- a\n- b", {}, "config", "c.yaml"),
]


@pytest.mark.parametrize(("text", "env", "key", "value"), BAD,
                         ids=[f"{b[2]}={b[3]}" for b in BAD])
def test_bad_value_is_one_line_naming_key_value_and_allowed(
    tmp_path: Path, text: str, env: dict[str, str], key: str, value: str
) -> None:
    path = write(tmp_path / "c.yaml", text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env, path=path)
    err = info.value
    line = str(err)
    assert "\n" not in line
    assert err.key == key
    assert key in line and value in line
    assert err.allowed and err.allowed in line
    for name in env:  # a value from the environment also says which variable set it
        assert name in line


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"CERTSTREAM_CONFIG": str(tmp_path / "nope.yaml")})
    assert "nope.yaml" in str(info.value) and "\n" not in str(info.value)


def test_resolved_settings_round_trip_and_win(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", f"""
port: 9100
feed_socket: /run/x/feed.sock
ct_log: {{log_list_urls: [], operator_rate_limits: {{Google: 100}}}}
auth: {{enabled: true, tokens: [a, b]}}
custom_logs: [{{name: A, url: "http://127.0.0.1:1/a/", start_index: 3}}]
static_logs: [{{name: T, url: "https://t.example/p/", key: "{SPKI}"}}]
""")
    s = load_settings({}, path=path)
    env = settings_to_env(s)
    assert list(env) == [RESOLVED_ENV]
    # The handed-down settings win over any file or variable the child might also see.
    other = write(tmp_path / "config.yaml", "port: 1\n")
    assert load_settings({**env, "CERTSTREAM_PORT": "2", "CERTSTREAM_CONFIG": other}) == s
    with pytest.raises(ConfigError):
        load_settings({RESOLVED_ENV: "{not json"})


def test_rate_limit_keys_from_file_and_env(tmp_path: Path) -> None:
    rate = Settings().rate_limit  # the spec's defaults
    assert (rate.max_tokens, rate.refill_rate, rate.burst, rate.window_seconds,
            rate.window_max_requests, rate.burst_window_seconds) == (100, 10, 20, 60, 1000, 10)
    assert Settings().connection_limit.per_ip_limit == 100
    path = write(tmp_path / "c.yaml", "rate_limit: {enabled: true, max_tokens: 8, "
                                      "refill_rate: 2.5, window_seconds: 30}\n")
    s = load_settings({"CERTSTREAM_RATE_LIMIT_BURST": "7",
                       "CERTSTREAM_RATE_LIMIT_WINDOW_MAX_REQUESTS": "50",
                       "CERTSTREAM_RATE_LIMIT_BURST_WINDOW_SECONDS": "5"}, path=path)
    r = s.rate_limit
    assert (r.enabled, r.max_tokens, r.refill_rate, r.burst, r.window_seconds,
            r.window_max_requests, r.burst_window_seconds) == (True, 8, 2.5, 7, 30, 50, 5)
    s = load_settings({"CERTSTREAM_RATE_LIMIT_MAX_TOKENS": "3",
                       "CERTSTREAM_RATE_LIMIT_REFILL_RATE": "0.5"}, path=path)
    assert (s.rate_limit.max_tokens, s.rate_limit.refill_rate) == (3, 0.5)


def test_requests_per_sec_is_the_older_name_of_refill_rate(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "rate_limit: {requests_per_sec: 2.5}\n")
    assert load_settings({}, path=path).rate_limit.refill_rate == 2.5
    # Its variable too; the setting's own variable wins over it, and both beat the file.
    env = {"CERTSTREAM_RATE_LIMIT_REQUESTS_PER_SEC": "0.5"}
    assert load_settings(env, path=path).rate_limit.refill_rate == 0.5
    env["CERTSTREAM_RATE_LIMIT_REFILL_RATE"] = "4"
    assert load_settings(env, path=path).rate_limit.refill_rate == 4


def test_burst_without_max_tokens_is_a_warning(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # An older config's "burst: 100" meant the bucket's size; now it is the spec's burst.
    path = write(tmp_path / "c.yaml", "rate_limit: {enabled: true, burst: 100}\n")
    with caplog.at_level(logging.WARNING):
        assert load_settings({}, path=path).rate_limit.burst == 100
    assert "rate_limit.burst is the spec's allowance" in caplog.text
    assert "rate_limit.max_tokens" in caplog.text
    caplog.clear()
    path = write(tmp_path / "c.yaml", "rate_limit: {max_tokens: 10, burst: 5}\n")
    with caplog.at_level(logging.WARNING):
        load_settings({}, path=path)
    assert "rate_limit.burst" not in caplog.text


def test_unknown_certstream_variables_are_a_warning(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "c.yaml", "port: 9000\n")
    env = {
        "CERTSTREAM_PROT": "1",  # a typo of CERTSTREAM_PORT
        "CERTSTREAM_RATE_LIMIT_BURSTS": "3",
        # Not settings, but ours: none of these is unknown.
        "CERTSTREAM_CONFIG": str(path), "CERTSTREAM_NO_EXTENSIONS": "1",
        "CERTSTREAM_REQUIRE_EXTENSIONS": "1", "CERTSTREAM_MASTER_PID": "1",
        "CERTSTREAM_FEED_SOCKET": "/x", "CERTSTREAM_WORKERS": "2",
        "CERTSTREAM_WS_ENABLED": "1", "CERTSTREAM_CT_LOG_RETRY_MAX_ATTEMPTS": "3",
        # certstream-server-go's variables belong to its config format.
        "CERTSTREAM_WEBSERVER_LISTEN_PORT": "8080", "CERTSTREAM_GENERAL_DROP_OLD_LOGS": "1",
        "CERTSTREAM_PROMETHEUS_ENABLED": "true",
    }
    with caplog.at_level(logging.WARNING):
        s = load_settings(env, path=path)
    assert s.port == 9000 and s.workers == 2
    lines = [r.getMessage() for r in caplog.records if "environment variables" in r.getMessage()]
    assert lines == ["unknown CERTSTREAM_* environment variables ignored (no such setting): "
                     "CERTSTREAM_PROT, CERTSTREAM_RATE_LIMIT_BURSTS"]
    assert unknown_env_names(env) == ["CERTSTREAM_PROT", "CERTSTREAM_RATE_LIMIT_BURSTS"]
    # The master's resolved settings are handed down: the children do not warn again.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_settings({**settings_to_env(s), **env})
    assert not caplog.records


def test_hot_reload_watches_the_file_the_settings_came_from(tmp_path: Path) -> None:
    write(tmp_path / "config.yaml", "hot_reload: {enabled: true}\n")
    # Found by the search order (a relative name): handed down as an absolute path.
    s = load_settings({})
    assert s.hot_reload.watch_path == str((tmp_path / "config.yaml").resolve())
    # It survives the trip to the workers, who must not search again.
    assert load_settings(settings_to_env(s)).hot_reload.watch_path == s.hot_reload.watch_path
    other = write(tmp_path / "other.yaml", "hot_reload: {enabled: true}\n")
    assert load_settings({"CERTSTREAM_CONFIG": other}).hot_reload.watch_path == str(
        Path(other).resolve())
    explicit = write(tmp_path / "x.yaml", "hot_reload: {enabled: true, watch_path: /w.yaml}\n")
    assert load_settings({}, path=explicit).hot_reload.watch_path == "/w.yaml"
    # Off, or with no file at all: nothing to watch is made up.
    write(tmp_path / "config.yaml", "port: 9000\n")
    assert load_settings({}).hot_reload.watch_path is None
    (tmp_path / "config.yaml").unlink()
    assert load_settings({"CERTSTREAM_HOT_RELOAD_ENABLED": "1"}).hot_reload.watch_path is None
