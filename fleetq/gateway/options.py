"""The settings of one gateway server that are not fleet settings: its public URL, the names and
origins it accepts, and its limits on streams, connections and slow clients."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from fleetq.errors import InvalidArgument
from fleetq.validation import is_ascii_int

#: Host names a gateway always answers to (when it has no token): its loopback names.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Bind addresses that are not a name anyone connects with.
WILDCARD_BINDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class GatewayOptions:
    """How one gateway serves. Defaults suit a gateway on loopback."""

    #: Where clients reach the gateway (``https://fleet.example.com``): the base of output URLs,
    #: and an accepted host name and origin. Without it, output URLs use the address and port
    #: the client connected to.
    public_url: str | None = None
    #: Further host names accepted in ``Host`` when no token is configured.
    allowed_hosts: tuple[str, ...] = ()
    #: Browser origins (``https://tools.example.com``) allowed to send writes.
    allowed_origins: tuple[str, ...] = ()
    #: Open event streams at most; the next one gets a 503.
    max_streams: int = 1000
    #: Open client connections at most; the next one gets a 503 and is closed.
    max_connections: int = 2000
    #: Time to send a request's headers, and the longest a connection may sit idle.
    header_timeout_s: float = 15.0
    #: Time to send a request body once the headers are in.
    body_timeout_s: float = 30.0
    #: Filled in by :meth:`checked`: lower-case host names, and origins without a trailing slash.
    host_names: frozenset[str] = field(default=frozenset(), compare=False)
    origins: frozenset[str] = field(default=frozenset(), compare=False)

    def checked(self) -> GatewayOptions:
        """Validate the options and fill in the names and origins to compare with."""
        for name, value in (
            ("max_streams", self.max_streams),
            ("max_connections", self.max_connections),
            ("header_timeout_s", self.header_timeout_s),
            ("body_timeout_s", self.body_timeout_s),
        ):
            if not value > 0:
                raise InvalidArgument(f"{name} must be positive, not {value}")
        names = {n.lower() for n in LOOPBACK_NAMES}
        names.update(normalize_host(h) for h in self.allowed_hosts)
        origins = {normalize_origin(o) for o in self.allowed_origins}
        public = self.public_url.rstrip("/") if self.public_url else None
        if public is not None:
            origin = _origin(public, with_path=True)
            if origin is None:
                raise InvalidArgument(f"public URL must be http(s)://HOST[:PORT][/PATH]: {public}")
            names.add(normalize_host(urlsplit(public).hostname or ""))
            origins.add(origin)
        return replace(
            self, public_url=public, host_names=frozenset(names), origins=frozenset(origins)
        )

    def bound_to(self, host: str) -> GatewayOptions:
        """These options for a server listening on ``host``: that address is an accepted name
        (unless it is a wildcard such as ``0.0.0.0``)."""
        if host in WILDCARD_BINDS or host in self.allowed_hosts:
            return self
        return replace(self, allowed_hosts=(*self.allowed_hosts, host))


def normalize_host(name: str) -> str:
    """A host name as compared: lower case, no brackets, no port, no trailing dot."""
    name = name.strip()
    bare_ipv6 = name.count(":") > 1 and not name.startswith("[")
    host = name.lower() if bare_ipv6 else host_of(name)
    if not host:
        raise InvalidArgument(f"not a host name: {name!r}")
    return host


def normalize_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, no path."""
    normalized = _origin(origin.strip(), with_path=False)
    if normalized is None:
        raise InvalidArgument(f"an allowed origin must look like https://HOST[:PORT]: {origin!r}")
    return normalized


def _origin(url: str, *, with_path: bool) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (default port left out), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return None
    if parts.username or parts.password or parts.fragment:
        return None
    if not with_path and parts.path not in ("", "/"):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 80 if parts.scheme == "http" else 443
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def host_of(header: str) -> str | None:
    """The host name of a ``Host`` header value (port dropped), or None when it is malformed."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1 :]
        if rest and not (rest.startswith(":") and is_ascii_int(rest[1:], 5)):
            return None
    else:
        name, sep, port = header.rpartition(":")
        if not sep:
            name = header
        elif not is_ascii_int(port, 5):
            return None
    name = name.lower().rstrip(".")
    return name or None
