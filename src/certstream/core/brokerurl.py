"""``broker.url``: where the Redis of a multi-machine deployment is, parsed and checked.

Two forms:

``redis://[user:password@]host[:port][/db]`` (also ``rediss://`` for TLS, ``unix:///path?db=N``)
    One Redis, handed to redis-py's ``Redis.from_url`` as it is.
``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service_name[/db]``
    Redis Sentinel: the Sentinels to ask (port 26379 by default) and the name of the master
    they watch; redis-py's ``Sentinel(...).master_for(service_name)`` follows a failover.
    The credentials are those of the Redis servers (the Sentinels are asked without any).

Plain code over strings: the config checks a URL with :func:`parse_broker_url` and the shell
connects with what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["SENTINEL_PORT", "BrokerAddress", "parse_broker_url"]

SENTINEL_PORT = 26379
_PLAIN = ("redis", "rediss", "unix")
_SENTINEL = "redis+sentinel"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed ``broker.url``: ``sentinels`` is empty for a plain Redis URL (``url``)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """The address without its password, for logs and ``/health/deep``."""
        if self.sentinels:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"{_SENTINEL}://{hosts}/{self.service}/{self.db}"
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port)


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse and check ``url`` (see the module doc); raises ValueError saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*_PLAIN, _SENTINEL):
        raise ValueError("the scheme must be redis://, rediss://, unix:// or redis+sentinel://")
    if scheme in _PLAIN:
        parts = urlsplit(url)
        if scheme == "unix":
            if not parts.path:
                raise ValueError("unix:// needs a socket path")
            return BrokerAddress(url)
        if not parts.hostname:
            raise ValueError("no host")
        _ = parts.port  # raises ValueError for a bad port
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"the database must be a number, not {db!r}")
        return BrokerAddress(url, db=int(db or 0))
    auth, _, hosts_path = rest.rpartition("@")
    hosts, _, path = hosts_path.partition("/")
    sentinels = tuple(_host_port(h.strip(), SENTINEL_PORT) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError("no Sentinel host")
    service, _, db = path.partition("/")
    service = unquote(service)
    if not service:
        raise ValueError("no service name (redis+sentinel://host:port/service_name/db)")
    db = db.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number, not {db!r}")
    username = password = None
    if auth:
        user, colon, pw = auth.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    return BrokerAddress(url, sentinels, service, int(db or 0), username, password)
