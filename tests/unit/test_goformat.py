"""certstream-server-go's config.yaml and environment names, mapped onto our settings
(``certstream.config.goformat`` through the loader): Go's defaults, each key, the
precedence when both formats' names are used, and bad values named in Go's terms."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from certstream import config
from certstream.config import load_settings, load_settings_report, metrics_listener
from certstream.config.goformat import GO_STATES, GOOGLE_LOG_LIST
from certstream.config.gokeys import GO_ENV_NAMES, GO_KEYS
from certstream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_GO = ROOT / "conformance" / "data" / "golden" / "go"


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", ("config.yaml", "config.yml"))


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_golden_configs_map_key_by_key(tmp_path: Path) -> None:
    s, report = load_settings_report({}, str(GOLDEN_GO / "synth11-tiled" / "go-config.yaml"))
    assert report.format == "certstream-server-go"
    assert (s.host, s.port) == ("127.0.0.1", 18080)
    assert (s.paths.lite, s.paths.full, s.paths.domains_only) == ("/", "/full-stream",
                                                                  "/domains-only")
    # prometheus on the webserver's address and port: the same listener, as in Go
    assert s.protocols.metrics and metrics_listener(s) is None and s.paths.metrics == "/metrics"
    assert s.metrics.go_series
    assert s.ct_log.log_list_urls == ()  # disable_default_logs
    assert [(c.name, c.url, c.operator) for c in s.custom_logs] == [
        ("Fake RFC6962 log", "http://127.0.0.1:18765/rfc6962", "Fake Operator")]
    assert [(t.name, t.url, t.operator, t.key) for t in s.static_logs] == [
        ("Fake tiled log", "http://127.0.0.1:18765/tiled", "Fake Operator", None)]
    assert s.ct_log.ct_index_file == "./ct_index.json"  # recovery.enabled
    assert s.ct_log.drop_unlisted_logs
    assert s.output.profile == "go"
    assert not report.warnings
    # every Go key has a row saying what it became
    assert {row.go_key for row in report.mapping.rows} >= set(GO_KEYS)  # type: ignore[union-attr]


def test_go_defaults_for_keys_the_file_leaves_out(tmp_path: Path) -> None:
    s = load_settings({}, write(tmp_path, "webserver:\n  real_ip: true\n"))
    assert (s.host, s.port, s.real_ip) == ("0.0.0.0", 8080, True)
    assert s.websocket.compression is False  # Go's default; ours is true
    assert s.protocols.metrics is False  # prometheus.enabled defaults to false in Go
    assert s.buffer_size == 300  # buffer_sizes.websocket
    assert s.ct_log.log_list_urls == (GOOGLE_LOG_LIST,)  # Go follows Google's list only
    assert s.ct_log.states == GO_STATES
    assert s.ct_log.ct_index_file == ""  # recovery off
    assert s.ct_log.start_overlap_leaves == 0  # Go starts a log at its head
    # ...and ours, for a file in our format
    ours = load_settings({}, write(tmp_path, "port: 8080\n", "ours.yaml"))
    assert ours.websocket.compression is True and ours.buffer_size == 1000
    assert not ours.metrics.go_series and ours.ct_log.ct_index_file == ""


def test_every_key(tmp_path: Path) -> None:
    s = load_settings({}, write(tmp_path, """
webserver:
  listen_addr: "::"
  listen_port: 9000
  full_url: /f/
  lite_url: /l
  domains_only_url: /d
  cert_path: /c.pem
  cert_key_path: /k.pem
  real_ip: true
  whitelist: ["10.0.0.0/8", "192.0.2.1"]
  compression_enabled: true
prometheus:
  enabled: true
  listen_addr: 127.0.0.1
  listen_port: 9100
  metrics_url: /m
  expose_system_metrics: true
  real_ip: true
  whitelist: [127.0.0.1]
general:
  disable_default_logs: false
  additional_logs:
    - {url: "https://ct.example/a/", operator: Ex, description: A}
  buffer_sizes: {websocket: 50}
  drop_old_logs: false
  recovery: {enabled: true, ct_index_file: /var/lib/ct.json}
"""))
    assert (s.host, s.port, s.tls_cert, s.tls_key) == ("::", 9000, "/c.pem", "/k.pem")
    assert (s.paths.full, s.paths.lite, s.paths.domains_only, s.paths.metrics) == (
        "/f/", "/l", "/d", "/m")
    assert s.real_ip and s.whitelist == ("10.0.0.0/8", "192.0.2.1")
    assert s.websocket.compression
    assert metrics_listener(s) == ("127.0.0.1", 9100)
    assert s.metrics.real_ip and s.metrics.whitelist == ("127.0.0.1",)
    assert s.metrics.process_metrics
    assert s.ct_log.log_list_urls == (GOOGLE_LOG_LIST,)
    assert s.buffer_size == 50 and not s.ct_log.drop_unlisted_logs
    assert s.ct_log.ct_index_file == "/var/lib/ct.json"


def test_go_env_names_override_the_file_as_in_go(tmp_path: Path) -> None:
    path = write(tmp_path, "webserver:\n  listen_port: 8081\n")
    s = load_settings({"CERTSTREAM_WEBSERVER_LISTEN_PORT": "8082",
                       "CERTSTREAM_GENERAL_RECOVERY_ENABLED": "true",
                       "CERTSTREAM_WEBSERVER_WHITELIST": "127.0.0.1, 10.0.0.0/8",
                       "CERTSTREAM_GENERAL_ADDITIONAL_LOGS":
                           '[{"url": "http://127.0.0.1:9/x", "description": "X"}]'}, path)
    assert s.port == 8082 and s.ct_log.ct_index_file == "./ct_index.json"
    assert s.whitelist == ("127.0.0.1", "10.0.0.0/8")
    assert [c.name for c in s.custom_logs] == ["X"]
    assert "CERTSTREAM_WEBSERVER_LISTEN_PORT" in GO_ENV_NAMES


def test_no_file_and_go_env_names_is_go_format() -> None:
    s, report = load_settings_report({"CERTSTREAM_WEBSERVER_LISTEN_PORT": "8083"})
    assert report.format == "certstream-server-go" and s.port == 8083 and s.buffer_size == 300


def test_precedence_when_both_formats_name_a_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "webserver:\n  listen_port: 8081\nport: 8090\nworkers: 3\n")
    s, report = load_settings_report({}, path)
    assert (s.port, s.workers) == (8090, 3)  # our key in the same file wins over Go's
    assert any("port" in w and "webserver.listen_port" in w for w in report.warnings)
    # the environment beats the file: a Go name beats our key in the file...
    s = load_settings({"CERTSTREAM_WEBSERVER_LISTEN_PORT": "8082"}, path)
    assert s.port == 8082
    # ...and our own name beats Go's
    s, report = load_settings_report({"CERTSTREAM_WEBSERVER_LISTEN_PORT": "8082",
                                      "CERTSTREAM_PORT": "8084"}, path)
    assert s.port == 8084
    assert any("CERTSTREAM_PORT overrides webserver.listen_port" in w for w in report.warnings)


def test_our_log_lists_in_a_go_file_add_to_gos(tmp_path: Path) -> None:
    s = load_settings({}, write(tmp_path, """
general:
  additional_logs: [{url: "https://a.example/log/", description: A}]
custom_logs: [{name: B, url: "https://b.example/log/"}]
"""))
    assert [c.name for c in s.custom_logs] == ["A", "B"]


def test_go_env_names_with_our_format_are_ignored_with_a_warning(tmp_path: Path) -> None:
    s, report = load_settings_report({"CERTSTREAM_WEBSERVER_LISTEN_PORT": "9"},
                                     write(tmp_path, "port: 8085\n"))
    assert s.port == 8085 and report.format == "certstream"
    assert any("CERTSTREAM_WEBSERVER_LISTEN_PORT" in w for w in report.warnings)


def test_keys_with_no_meaning_here_are_warnings_naming_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, """
webserver:
  trusted_proxies: [172.16.0.0/12]
  listen_port: 8086
  colour: blue
prometheus:
  enabled: true
  whitelist: [127.0.0.1]
general:
  buffer_sizes: {ctlog: 5, broadcastmanager: 7, websocket: 0}
  excluded_logs: [{operator: Google}]
streamprocessing: {kafka: {enabled: true}}
""")
    with caplog.at_level(logging.WARNING, "certstream.config"):
        s = load_settings({}, path)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for key in ("webserver.trusted_proxies", "webserver.colour", "general.buffer_sizes.ctlog",
                "general.buffer_sizes.broadcastmanager", "general.excluded_logs",
                "streamprocessing"):
        assert key in text, key
    # prometheus on 0.0.0.0:9090 by default: a listener of its own, with its whitelist
    assert metrics_listener(s) == ("0.0.0.0", 9090) and s.metrics.whitelist == ("127.0.0.1",)
    assert s.buffer_size == 300  # 0 means Go's default there


def test_shared_listener_ignores_the_prometheus_whitelist_with_a_warning(tmp_path: Path) -> None:
    s, report = load_settings_report({}, write(tmp_path, """
webserver: {listen_port: 8087}
prometheus: {enabled: true, listen_port: 8087, whitelist: [127.0.0.1]}
"""))
    assert metrics_listener(s) is None and s.metrics.whitelist == ()
    assert any(w.startswith("prometheus.whitelist: ignored") for w in report.warnings)


BAD = [
    ("webserver: {listen_addr: localhost}", {}, "webserver.listen_addr", "localhost"),
    ("webserver: {listen_port: http}", {}, "webserver.listen_port", "http"),
    ("webserver: {listen_port: 0}", {}, "webserver.listen_port", "0"),
    ("webserver: {listen_port: 70000}", {}, "webserver.listen_port", "70000"),
    ("", {"CERTSTREAM_WEBSERVER_LISTEN_PORT": "x"}, "webserver.listen_port", "x"),
    ("webserver: {full_url: 'full stream'}", {}, "webserver.full_url", "full stream"),
    ("webserver: {full_url: /x, lite_url: /x/}", {}, "webserver.full_url", "/x"),
    ("webserver: {lite_url: /sse}", {}, "webserver.lite_url", "/sse"),
    ("webserver: {whitelist: [127.0.0.1, nope]}", {}, "webserver.whitelist[1]", "nope"),
    ("webserver: {cert_path: /c.pem}", {}, "webserver.cert_key_path", "''"),
    ("webserver: {real_ip: maybe}", {}, "webserver.real_ip", "maybe"),
    ("webserver: 5", {}, "webserver", "5"),
    ("prometheus: {enabled: true, listen_addr: metrics.local, listen_port: 9}", {},
     "prometheus.listen_addr", "metrics.local"),
    ("general: {disable_default_logs: true}", {}, "general.additional_logs", "()"),
    ("general: {additional_logs: [{url: 'ftp://x/'}]}", {}, "general.additional_logs[0].url",
     "ftp://x/"),
    ("general: {additional_logs: [oops]}", {}, "general.additional_logs[0]", "oops"),
    ("general: {buffer_sizes: {websocket: many}}", {}, "general.buffer_sizes.websocket",
     "many"),
    ("", {"CERTSTREAM_GENERAL_ADDITIONAL_TILED_LOGS": "[{"},
     "general.additional_tiled_logs", "[{"),
]


@pytest.mark.parametrize(("text", "env", "key", "value"), BAD, ids=[b[2] for b in BAD])
def test_a_bad_value_is_one_line_naming_the_go_key(
        tmp_path: Path, text: str, env: dict[str, str], key: str, value: str) -> None:
    path = write(tmp_path, "general: {}\n" + text + "\n" if "general" not in text
                 else text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env, path)
    line = str(info.value)
    assert "\n" not in line
    assert info.value.key == key, line
    assert value in line
    for name in env:
        assert name in line
