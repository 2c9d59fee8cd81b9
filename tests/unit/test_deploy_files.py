"""The deployment files agree with the server's defaults: ports, paths, health, user.

No Docker daemon or systemd runs here; ``tests/e2e/test_deploy_tools.py`` runs hadolint,
``systemd-analyze verify`` and the container's entry point.  This file reads them.
"""

from __future__ import annotations

import configparser
import fnmatch
import shlex
from pathlib import Path
from typing import Any

import yaml
from tests.support.dockerfile import ROOT, exec_form, stages

from certstream.config import DEFAULT_CONFIG_PATHS, Settings, settings_from_dict
from certstream.shell.app import GRACEFUL_TIMEOUT

DEFAULTS = Settings()
PORT = str(DEFAULTS.port)


def test_dockerfile_builds_in_one_stage_and_runs_slim_as_a_user() -> None:
    build, runtime = stages()
    assert build.name == "build" and build.base.startswith("python:")
    assert runtime.base.startswith("python:") and "slim" in runtime.base
    # the wheel is built with its extensions required, from the sdist
    assert build.env()["CERTSTREAM_REQUIRE_EXTENSIONS"] == "1"
    argv = build.run_with("-m build")
    assert argv[:3] == ["python", "-m", "build"] and "--sdist" not in argv
    assert "--wheel" not in argv  # both: the sdist, then the wheel built from it
    assert any(a.startswith("--from=build /dist/") for a in runtime.all("COPY"))
    (user,) = runtime.all("USER")
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit()


def test_dockerfile_ports_paths_and_health_match_the_defaults() -> None:
    _, runtime = stages()
    assert runtime.all("EXPOSE") == [PORT]
    assert runtime.all("WORKDIR") == ["/app/state"]
    assert exec_form(runtime.all("VOLUME")[0]) == ["/app/state"]
    # the default state file is relative, so it lands in the working directory: the volume
    assert not Path(DEFAULTS.ct_log.state_file).is_absolute()
    (health,) = runtime.all("HEALTHCHECK")
    assert "/health" in health and f"'{PORT}'" in health and "CMD" in health
    (entry,) = runtime.all("ENTRYPOINT")
    script = exec_form(entry)[0]
    copied = {dest.rsplit("/", 1)[-1]: srcs for srcs, dest in runtime.copies()}
    assert copied[script] == ["deploy/docker-entrypoint.sh"]
    text = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    assert '"$app_dir/config.yaml" "$app_dir/config/config.yaml"' in text
    assert "${CERTSTREAM_APP_DIR:-/app}" in text
    assert "exec certstream" in text


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for stage in stages():
        for sources, _ in stage.copies():
            for src in sources:
                assert (ROOT / src).exists(), src
                assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), src


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_runs_the_image_with_config_state_restart_and_health() -> None:
    compose = _compose()
    svc = compose["services"]["certstream"]
    assert svc["build"] == "."
    assert svc["restart"] in ("always", "unless-stopped", "on-failure")
    published = [str(p).split(":") for p in svc["ports"]]
    assert [p[-1] for p in published] == [PORT]
    mounts = {v.split(":")[1]: v.split(":") for v in svc["volumes"]}
    assert mounts["/app/config.yaml"][0] == "./config.yaml"
    assert mounts["/app/config.yaml"][2:] == ["ro"]
    state_volume = mounts["/app/state"][0]
    assert state_volume in compose["volumes"]
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD" and any(f"127.0.0.1:{PORT}/health" in part for part in test)
    for key in ("interval", "timeout", "retries"):
        assert key in svc["healthcheck"]
    # docker stop waits long enough for the graceful stop (clients, then the ingest)
    assert int(svc["stop_grace_period"].rstrip("s")) >= 2 * GRACEFUL_TIMEOUT


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ROOT / "deploy" / "certstream.service").read_text())
    return parser


def test_systemd_unit_runs_certstream_hardened_with_its_state_directory() -> None:
    unit = _unit()
    svc = unit["Service"]
    assert shlex.split(svc["ExecStart"])[0].endswith("/bin/certstream")
    assert svc["DynamicUser"] == "yes"
    assert svc["Restart"] == "on-failure"
    assert svc["Type"] == "notify"  # gunicorn's master says READY=1 (checked in e2e)
    # the relative default state file lands in the state directory
    assert svc["WorkingDirectory"] == "/var/lib/" + svc["StateDirectory"]
    # the config lives where the server looks by default
    assert f"/etc/{svc['ConfigurationDirectory']}/config.yaml" in DEFAULT_CONFIG_PATHS
    for key, value in {
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "CapabilityBoundingSet": "",
    }.items():
        assert svc[key] == value, key
    assert "AF_UNIX" in svc["RestrictAddressFamilies"]  # the feed socket
    assert svc["KillMode"] == "mixed"
    assert int(svc["TimeoutStopSec"]) >= 2 * GRACEFUL_TIMEOUT
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_scaleout_compose_file_runs_redis_one_ingest_and_two_edges() -> None:
    """``deploy/docker-compose.scaleout.yml``: every certstream service is the image with a
    role and the broker URL of the compose file's Redis; the edges publish the port."""
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.scaleout.yml").read_text())
    services = compose["services"]
    assert services["redis"]["image"].startswith("redis:")
    roles = {name: svc["environment"]["CERTSTREAM_ROLE"]
             for name, svc in services.items() if name != "redis"}
    assert sorted(roles.values()) == ["edge", "edge", "ingest"]
    for name, svc in services.items():
        if name == "redis":
            continue
        env = svc["environment"]
        settings = settings_from_dict({"role": env["CERTSTREAM_ROLE"],
                                       "broker": {"url": env["CERTSTREAM_BROKER_URL"]}})
        assert settings.broker.url.startswith("redis://redis:6379/")
        assert svc["build"] == ".." and "redis" in svc["depends_on"]
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts["/app/config.yaml"] == "../config.yaml"
        assert int(svc["stop_grace_period"].rstrip("s")) >= 2 * GRACEFUL_TIMEOUT
        published = [str(p).split(":")[-1] for p in svc.get("ports", ())]
        assert published == ([PORT] if roles[name] == "edge" else [])
    assert "/app/state" in {v.split(":")[1] for v in services["ingest"]["volumes"]}
    for volume in ("redis-data", "ingest-state"):
        assert volume in compose["volumes"]
