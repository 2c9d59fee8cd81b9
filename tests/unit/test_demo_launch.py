"""``certstream --demo`` settings: exactly the demo logs, nothing from the internet."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from certstream.config import CustomLog, Settings, StaticLog, load_settings
from certstream.demo.corpus import load_corpus
from certstream.demo.ctlog import DEMO_LOGS, DemoLogs
from certstream.demo.launch import demo_settings


def test_demo_settings_follow_the_described_logs_only(tmp_path: Path) -> None:
    base = dataclasses.replace(
        load_settings({"CERTSTREAM_PORT": "9999", "CERTSTREAM_OUTPUT_PROFILE": "rust"}),
        custom_logs=(CustomLog("Real", "https://ct.example/log/"),),
    )
    info = DemoLogs(load_corpus(), "http://127.0.0.1:4321", rate=10, start=time.time()).describe()
    s = demo_settings(base, info, str(tmp_path))
    assert isinstance(s, Settings)
    assert s.ct_log.log_list_urls == ()  # nothing is fetched from the internet
    assert s.ct_log.sth_signature == "enforce"
    assert s.ct_log.static_ct_checkpoint_signature == "enforce"
    assert Path(s.ct_log.state_file).parent == tmp_path
    described = {log["name"]: log for log in info["logs"]}
    rfc = [d for d in DEMO_LOGS if d.kind == "rfc6962"]
    static = [d for d in DEMO_LOGS if d.kind == "static"]
    assert [c.name for c in s.custom_logs] == [d.name for d in rfc]
    assert [c.name for c in s.static_logs] == [d.name for d in static]
    logs: list[CustomLog | StaticLog] = [*s.custom_logs, *s.static_logs]
    for log in logs:
        assert log.url.startswith("http://127.0.0.1:4321/")
        assert log.key == described[log.name]["key"]
        assert log.operator == described[log.name]["operator"]
    for st in s.static_logs:
        assert isinstance(st, StaticLog)
        assert st.log_origin == described[st.name]["origin"]
    # everything else stays as configured
    assert (s.port, s.output.profile) == (9999, "rust")
