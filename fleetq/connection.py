"""Redis connections: one place that builds clients from settings and names connection errors.

URLs (``Settings.redis_url``, ``FLEETQ_REDIS_URL``, ``--redis``)::

    redis://[[user]:password@]host[:port][/db]           plain TCP
    rediss://[[user]:password@]host[:port][/db]?ssl_ca_certs=/etc/fleetq/ca.pem
                                                         TLS (ssl_certfile, ssl_keyfile for a
                                                         client certificate; ssl_cert_reqs,
                                                         ssl_check_hostname)
    unix://[[user]:password@]/run/redis.sock[?db=0]      Unix socket
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]
    rediss+sentinel://...                                the same over TLS (sentinels too)
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]
    rediss+cluster://...?ssl_ca_certs=...                Redis Cluster (startup nodes)

A Sentinel URL lists the Sentinels (port 26379 when left out) and names the monitored service;
the user and password are those of the Redis primary and replicas. Sentinels with their own
password take ``?sentinel_password=...`` (and ``sentinel_username=...``); the TLS parameters
above apply to the data nodes and to the Sentinels. Clients ask the Sentinels for the primary
at every (re)connect and at most once a second besides, so they follow a failover.
Percent-encode ``@ : / ? #`` in a user or password. docs/OPERATIONS.md has the details.

A Cluster URL names one or more of the cluster's nodes; the client learns the slot map from
them and follows MOVED/ASK redirections and failovers. Every key of a namespace shares one hash
tag, so each script runs on the one shard that owns the namespace's slot. redis-py routes a
read-only script (EVALSHA_RO) after asking a node for its keys (COMMAND GETKEYS, one more round
trip), and ``wait_replicas`` is not available on a cluster.

Blocking calls (BZPOPMIN, XREAD BLOCK) always use a block timeout shorter than the socket
timeout, so a silently dead TCP connection surfaces as an error instead of a hang.

Credentials never leave this module in a message: :func:`~fleetq.urls.safe_url` masks them,
and every error text built here goes through :func:`~fleetq.urls.scrub`.
"""

from __future__ import annotations

from fleetq._async.connection import connect as connect_async
from fleetq._async.connection import run_script_ro as run_script_ro_async
from fleetq._async.connection import run_script_waited as run_script_waited_async
from fleetq._sync.connection import connect, run_script_ro, run_script_waited
from fleetq.redis_errors import (
    CONNECTION_ERRORS,
    check_replicated,
    permission_denied,
    raise_for_reply,
    translate_errors,
    unavailable,
)
from fleetq.redis_options import PRIMARY_RECHECK_S, READ_ONLY_SCRIPTS, WAITED_SCRIPTS
from fleetq.urls import (
    SENTINEL_SCHEMES,
    SentinelURL,
    is_sentinel_url,
    parse_sentinel_url,
    safe_url,
    scrub,
)

# The code lives in fleetq._async.connection (single source; fleetq._sync.connection is
# generated from it), fleetq.redis_options and fleetq.redis_errors; this module names it.
__all__ = [
    "CONNECTION_ERRORS",
    "PRIMARY_RECHECK_S",
    "READ_ONLY_SCRIPTS",
    "SENTINEL_SCHEMES",
    "WAITED_SCRIPTS",
    "SentinelURL",
    "check_replicated",
    "connect",
    "connect_async",
    "is_sentinel_url",
    "parse_sentinel_url",
    "permission_denied",
    "raise_for_reply",
    "run_script_ro",
    "run_script_ro_async",
    "run_script_waited",
    "run_script_waited_async",
    "safe_url",
    "scrub",
    "translate_errors",
    "unavailable",
]
