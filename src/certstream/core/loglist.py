"""CT log lists (Google v3, Apple v5): signature check, parsing, and which logs to follow.

Both lists share one shape: ``operators[]`` each with ``logs[]`` (RFC 6962: ``url``) and
``tiled_logs[]`` (static-ct-api: ``submission_url`` and ``monitoring_url``).  Google signs
``log_list.json`` with RSA PKCS#1 v1.5 SHA-256 (``log_list.sig``); Apple's list has no
signature file, so it is trusted as far as TLS.

Selection (``select_logs``): the logs of every trusted list, each judged by the list that
names it, with the same rule for both: states usable, qualified and readonly by default;
never retired or rejected; never ``log_type`` test or monitoring_only; no shard whose
temporal interval ended more than ~400 days ago (no unexpired certificate can still be logged
there).  A log both lists name (one ``log_id``) is followed once, as Google's list describes
it when that list makes it eligible, else as Apple's does.  So a log that only Apple's list
carries is followed even when its operator is in Google's list (Cloudflare's static-ct Raio
logs were Apple-only while Google listed Cloudflare's Nimbus): certificates logged there are
trusted by Apple's platforms, and a certstream server streams what any root program trusts.
Time is passed in, never read here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from certstream.errors import DecodeError

__all__ = [
    "DEFAULT_STATES",
    "GOOGLE_LOG_LIST_URL",
    "STALE_SHARD_SECONDS",
    "LogInfo",
    "LogList",
    "google_pubkey_pem",
    "packaged_google_list",
    "parse_log_list",
    "select_logs",
    "verify_google_list",
]

DEFAULT_STATES = ("usable", "qualified", "readonly")
#: Shards whose temporal interval ended longer ago than this are not followed.
STALE_SHARD_SECONDS = 400 * 86400
_NEVER_STATES = frozenset({"retired", "rejected"})
_SKIP_LOG_TYPES = frozenset({"test", "monitoring_only"})


@dataclass(frozen=True, slots=True)
class LogInfo:
    """One log from a list, normalized.

    ``url`` ends in ``/``: the RFC 6962 log URL, or the static-ct-api monitoring prefix.
    ``origin`` is the URL a checkpoint names, without scheme and trailing slash: for static
    logs that of the *submission* URL (it differs from the monitoring prefix for logs served
    from a bucket), for RFC 6962 logs that of ``url``.  ``state`` is ``""`` when the list
    gives none.  ``temporal_end`` is the shard's ``end_exclusive`` in Unix seconds.
    """

    description: str
    operator: str
    log_id: str
    key: str
    kind: str
    url: str
    origin: str
    state: str
    final_tree_size: int | None
    temporal_end: float | None
    mmd: int
    log_type: str = ""
    source: str = ""

    @property
    def key_der(self) -> bytes:
        return base64.b64decode(self.key)


class LogList(list[LogInfo]):
    """The logs of one list, plus how many entries were skipped as malformed."""

    def __init__(
        self, logs: Iterable[LogInfo] = (), *, skipped: int = 0, version: str = ""
    ) -> None:
        super().__init__(logs)
        self.skipped = skipped
        self.version = version


def google_pubkey_pem() -> bytes:
    """Google's log-list signing key, as packaged with certstream."""
    return (resources.files("certstream") / "data" / "google_log_list_pubkey.pem").read_bytes()


#: Where Google publishes the list that ``packaged_google_list`` is a snapshot of.
GOOGLE_LOG_LIST_URL = "https://www.gstatic.com/ct/log_list/v3/log_list.json"


def packaged_google_list() -> tuple[bytes, bytes]:
    """A signed snapshot of Google's ``log_list.json`` and its ``.sig``, packaged with
    certstream, for a start without network: the logs it names are then followed (and
    reported unreachable) instead of none at all, until the live list arrives."""
    data = resources.files("certstream") / "data"
    return (data / "google_log_list.json").read_bytes(), (data / "google_log_list.sig").read_bytes()


def verify_google_list(body: bytes, sig: bytes, pubkey_pem: bytes | None = None) -> bool:
    """True when ``sig`` is Google's signature over exactly ``body`` (log_list.json)."""
    # cryptography is imported where a key is used (see ``core.sth``): ~9 MiB per process.
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415

    try:
        key = serialization.load_pem_public_key(pubkey_pem or google_pubkey_pem())
    except (ValueError, UnsupportedAlgorithm):
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, body, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _strip_scheme(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _str(obj: Mapping[str, object], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise DecodeError(f"log list: {name} missing or not a string")
    return value


def _b64(obj: Mapping[str, object], name: str) -> bytes:
    try:
        return base64.b64decode(_str(obj, name), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"log list: {name} is not base64") from None


def _timestamp(value: object) -> float:
    if not isinstance(value, str):
        raise DecodeError("log list: timestamp is not a string")
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise DecodeError(f"log list: bad timestamp {value!r:.40}") from None


def _log(raw: object, operator: str, kind: str, source: str) -> LogInfo:
    if not isinstance(raw, dict):
        raise DecodeError("log list: log entry is not an object")
    key = _b64(raw, "key")
    log_id = _b64(raw, "log_id")
    if hashlib.sha256(key).digest() != log_id:
        raise DecodeError("log list: log_id is not the SHA-256 of key")
    if kind == "rfc6962":
        url = _slash(_str(raw, "url"))
        origin = _strip_scheme(url)
    else:
        url = _slash(_str(raw, "monitoring_url"))
        origin = _strip_scheme(_str(raw, "submission_url"))
    state = ""
    final_size = None
    states = raw.get("state")
    if states is not None:
        if not isinstance(states, dict) or len(states) != 1:
            raise DecodeError("log list: state must hold exactly one key")
        ((state, detail),) = states.items()
        if state == "readonly" and isinstance(detail, dict):
            head = detail.get("final_tree_head")
            size = head.get("tree_size") if isinstance(head, dict) else None
            if isinstance(size, int) and not isinstance(size, bool):
                final_size = size
    temporal_end = None
    interval = raw.get("temporal_interval")
    if interval is not None:
        if not isinstance(interval, dict):
            raise DecodeError("log list: temporal_interval is not an object")
        temporal_end = _timestamp(interval.get("end_exclusive"))
    mmd = raw.get("mmd", 86400)
    if not isinstance(mmd, int) or isinstance(mmd, bool):
        raise DecodeError("log list: mmd is not an integer")
    description = raw.get("description", "")
    log_type = raw.get("log_type", "")
    return LogInfo(
        description=description if isinstance(description, str) else "",
        operator=operator,
        log_id=base64.b64encode(log_id).decode("ascii"),
        key=base64.b64encode(key).decode("ascii"),
        kind=kind,
        url=url,
        origin=origin,
        state=state,
        final_tree_size=final_size,
        temporal_end=temporal_end,
        mmd=mmd,
        log_type=log_type if isinstance(log_type, str) else "",
        source=source,
    )


def parse_log_list(body: bytes, source: str) -> LogList:
    """Parse a Google v3 or Apple v5 list; ``source`` ("google", "apple") is recorded.

    Raises ``DecodeError`` when the document is not a log list at all.  A log entry that
    lacks a required field (key, log_id matching the key, url or submission/monitoring URL)
    or has a malformed state, interval or mmd is skipped and counted in ``skipped``.
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise DecodeError(f"{source} log list: not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("operators"), list):
        raise DecodeError(f"{source} log list: no operators list")
    out: list[LogInfo] = []
    skipped = 0
    for op in doc["operators"]:
        if not isinstance(op, dict) or not isinstance(op.get("name"), str):
            skipped += 1
            continue
        for field, kind in (("logs", "rfc6962"), ("tiled_logs", "static")):
            logs = op.get(field, [])  # older lists have no tiled_logs
            if not isinstance(logs, list):
                skipped += 1
                continue
            for raw in logs:
                try:
                    out.append(_log(raw, op["name"], kind, source))
                except DecodeError:
                    skipped += 1
    version = doc.get("version")
    return LogList(out, skipped=skipped, version=str(version) if version is not None else "")


def _eligible(log: LogInfo, states: frozenset[str], now: float) -> bool:
    if log.state in _NEVER_STATES or log.state not in states:
        return False
    if log.log_type in _SKIP_LOG_TYPES:
        return False
    return log.temporal_end is None or log.temporal_end >= now - STALE_SHARD_SECONDS


def select_logs(
    google: Sequence[LogInfo] | None,
    apple: Sequence[LogInfo] | None,
    states: Sequence[str] = DEFAULT_STATES,
    now: float = 0.0,
) -> list[LogInfo]:
    """The logs to follow: every log either list makes eligible, once per ``log_id``,
    Google's entry first (see the module docstring)."""
    wanted = frozenset(states)
    chosen: dict[str, LogInfo] = {}
    for log in (*(google or ()), *(apple or ())):
        if _eligible(log, wanted, now):
            chosen.setdefault(log.log_id, log)
    return list(chosen.values())
