"""Redis URLs: the ``redis+sentinel://`` and ``redis+cluster://`` forms fleetq adds to
redis-py's, and masking of the secrets any URL may carry, for logs and error messages.

See :mod:`fleetq.connection` for the forms a URL may take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379
#: Query parameters a Cluster URL takes (TLS of every node).
CLUSTER_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                  "ssl_check_hostname")  # fmt: skip
#: Query parameters a Sentinel URL takes; ``ssl_*`` apply to data nodes and Sentinels.
SENTINEL_PARAMS = (
    "sentinel_username",
    "sentinel_password",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
_SECRET_PARAM = re.compile(r"pass|secret|token|auth", re.IGNORECASE)
#: Query parameters whose values are shown in logs; any other value (``password``, a
#: misspelt ``sentinel_pasword``...) is masked.
SHOWN_PARAMS = frozenset({
    "db", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
    "ssl_check_hostname", "ssl_min_version", "socket_timeout", "socket_connect_timeout",
    "socket_keepalive", "health_check_interval", "max_connections", "protocol", "timeout",
    "client_name", "sentinel_username", "username",
})  # fmt: skip
_QUERY_VALUE = re.compile(r"([?&])([^=&#]*)=([^&#]*)")


def _mask_query_value(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    shown = unquote(name).lower() in SHOWN_PARAMS
    return f"{separator}{name}={value if shown else '***'}"


PLAIN_USER = re.compile(r"[A-Za-z0-9._~+-]*")


# -- masking --------------------------------------------------------------------------------


def split_authority(url: str) -> tuple[str, str | None, str] | None:
    """``(scheme, userinfo or None, rest)`` split at the last ``@`` (a password may hold an
    unencoded ``@`` or ``/``), or None when the text has no ``scheme://``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    at = rest.rfind("@")
    if at < 0:
        return scheme, None, rest
    return scheme, rest[:at], rest[at + 1 :]


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for logs and error messages.

    Handles unencoded ``@``/``/`` in passwords, several Sentinel hosts, and secrets given as
    query parameters (``?password=``, ``?sentinel_password=``).
    """
    parts = split_authority(url)
    if parts is None:
        return "<unparsable url>" if "@" in url or _SECRET_PARAM.search(url) else url
    scheme, userinfo, rest = parts
    rest = _QUERY_VALUE.sub(_mask_query_value, rest)
    if userinfo is None:
        return f"{scheme}://{rest}"
    user, colon, _ = userinfo.partition(":")
    if not PLAIN_USER.fullmatch(user):
        user, colon = "", ":"
    return f"{scheme}://{user}{':***' if colon else ''}@{rest}"


def _secrets(url: str) -> list[str]:
    """Every secret in ``url`` as written and decoded, longest first."""
    found: list[str] = []
    parts = split_authority(url)
    if parts is None:
        return [url] if "@" in url else []
    _, userinfo, rest = parts
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        found += [password, unquote(password)] if colon else []
        if not PLAIN_USER.fullmatch(user):
            found += [userinfo, unquote(userinfo)]
    query = rest.partition("?")[2].partition("#")[0]
    for raw in query.split("&"):
        name, _, value = raw.partition("=")
        if unquote(name).lower() not in SHOWN_PARAMS:
            found += [value, unquote(value), unquote(value.replace("+", " "))]
    # Shorter values would mask unrelated characters of the message; they are no secret.
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` (and the URL itself) masked."""
    text = text.replace(url, safe_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


# -- Sentinel URLs --------------------------------------------------------------------------


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` or ``rediss+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    #: TLS options (``ssl_*``) for data nodes and Sentinels.
    ssl_options: Mapping[str, Any] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def _host_port(
    text: str, default_port: int = DEFAULT_SENTINEL_PORT, what: str = "Sentinel"
) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"empty {what} host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{what} port of {host} is not a port number")
    return host, int(port_text)


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} takes true or false")


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``.

    Raises ``ValueError`` (with a message free of secrets) when the URL is malformed.
    """
    parts = split_authority(url)
    if parts is None or parts[0].lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"a Sentinel URL starts with {' or '.join(SENTINEL_SCHEMES)}://")
    scheme, userinfo, rest = parts
    rest = rest.partition("#")[0]
    location, _, query = rest.partition("?")
    hosts, slash, path = location.partition("/")
    if not hosts:
        raise ValueError("a Sentinel URL needs at least one Sentinel host:port")
    sentinels = tuple(_host_port(h.strip()) for h in hosts.split(","))
    segments = [s for s in path.split("/") if s] if slash else []
    if not segments or len(segments) > 2:
        raise ValueError("a Sentinel URL ends with /service_name or /service_name/db")
    service = unquote(segments[0])
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError("the database after the service name must be a number")
        db = int(segments[1])
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    options: dict[str, Any] = {}
    sentinel_auth: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in SENTINEL_PARAMS:
            raise ValueError(
                f"unknown Sentinel URL parameter {name!r} (known: {', '.join(SENTINEL_PARAMS)})"
            )
        if name.startswith("sentinel_"):
            sentinel_auth[name] = value
        elif name == "ssl_check_hostname":
            options[name] = _flag(name, value)
        else:
            options[name] = value
    return SentinelURL(
        sentinels=sentinels,
        service_name=service,
        db=db,
        username=username,
        password=password,
        ssl=scheme.lower() == "rediss+sentinel",
        ssl_options=options,
        sentinel_username=sentinel_auth.get("sentinel_username") or None,
        sentinel_password=sentinel_auth.get("sentinel_password") or None,
    )


# -- Cluster URLs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` or ``rediss+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_options: Mapping[str, Any] = field(default_factory=dict)


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse ``redis+cluster://[[user]:password@]host[:port][,host[:port]...][?ssl_...]``.

    The hosts are startup nodes (any of the cluster's nodes; port 6379 when left out): the
    client asks them for the slot map and then talks to every shard. A cluster has only
    database 0, so the URL takes no database. Raises ``ValueError`` (free of secrets).
    """
    parts = split_authority(url)
    if parts is None or parts[0].lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"a Cluster URL starts with {' or '.join(CLUSTER_SCHEMES)}://")
    scheme, userinfo, rest = parts
    rest = rest.partition("#")[0]
    location, _, query = rest.partition("?")
    hosts, _, path = location.partition("/")
    if not hosts:
        raise ValueError("a Cluster URL needs at least one node host:port")
    if path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0; leave the database out")
    nodes = tuple(
        _host_port(h.strip(), DEFAULT_REDIS_PORT, "Cluster node") for h in hosts.split(",")
    )
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in CLUSTER_PARAMS:
            raise ValueError(
                f"unknown Cluster URL parameter {name!r} (known: {', '.join(CLUSTER_PARAMS)})"
            )
        options[name] = _flag(name, value) if name == "ssl_check_hostname" else value
    ssl = scheme.lower() == "rediss+cluster"
    if options and not ssl:
        raise ValueError("TLS parameters need a rediss+cluster:// URL")
    return ClusterURL(nodes, username, password, ssl, options)
