#!/usr/bin/env python3
"""Print Redis ACL rules for the three fleetq roles of one namespace.

    scripts/acl_rules.py NAMESPACE                       # ACL SETUSER lines, for redis-cli
    scripts/acl_rules.py NAMESPACE --format aclfile      # lines for an aclfile (users.acl)
    scripts/acl_rules.py studio-b --password client=S3cr3t --user client=render-farm

Roles (docs/OPERATIONS.md explains each rule):

- ``client``: submit, status, wait, list, stats, cancel, read outputs. It cannot claim, renew,
  complete, fail or reap (those scripts declare ``leases`` and write ``running:*`` and
  ``out:*``), pause, drain or send operator commands.
- ``supervisor``: claim, renew, complete, fail, acknowledge cancels, reap, publish its host
  record, read its operator command stream. It cannot submit (``seq``) or send commands to
  other supervisors (``ctl:*`` is read-only).
- ``operator``: everything the dashboard and the CLI do, within the namespace.

Passwords come from ``--password ROLE=SECRET`` or ``FLEETQ_ACL_<ROLE>_PASSWORD``; a role
without one gets a random password, printed on stderr only. The rules carry SHA-256 hashes
(``#...``), never a password in clear.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ROLE_NAMES = ("client", "supervisor", "operator")

#: Commands of every role: reads, writes and scripts, without the server-wide, key-less and
#: dangerous ones. ``-@keyspace`` drops SCAN, RANDOMKEY and DBSIZE (they reveal other
#: namespaces' keys); the five key commands fleetq's scripts use are added back.
COMMANDS = (
    "-@all +@connection +@read +@write +@scripting +time +wait "
    "-@dangerous -@admin -@keyspace +exists +del +pexpire +pttl +persist "
    "-script|flush -script|kill -script|debug -function -fcall -fcall_ro"
)


@dataclass(frozen=True)
class Role:
    """Key suffixes (after ``{namespace}:``) a role may read and write, or only read."""

    read_write: tuple[str, ...]
    read_only: tuple[str, ...] = ()


def _keys(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ROLES: Mapping[str, Role] = {
    # submit: q, waiting, job, in (input files), seq, services, idem, marker (wake), events,
    # classes and classver (requirement classes), fair (the tenant's fair-share tag), tcount
    # (per-tenant counts), tenants (weights, read); status reads caps (why a job is
    # unschedulable); cancel: job, q, delayed, waiting, ended, jobev, in, idem, events, fair,
    # tcount, signal (tells the running job's supervisor); wait: jobev; list/stats read the
    # rest. Weights are the operator's.
    "client": Role(
        read_write=_keys(
            "job:* jobev:* in:* q:* delayed:* waiting:* ended:* marker:* seq services idem:* "
            "events signal:* classes:* classver:* fair:* tcount:*"
        ),
        # lastreq: who paused or drained (fleetq stats and the dashboard name them).
        read_only=_keys(
            "out:* preview:* running:* paused drained lastreq hosts host:* gpus:* caps:* tenants "
            "runtimes:*"
        ),
    ),
    # claim declares paused and drained, reap declares services: Redis asks for read and
    # write access to every key a script declares, so these three are read-write too (and
    # classver:*, which claim declares). It pops its signal (signal:*) with its work markers
    # and publishes its GPUs' capabilities (caps:*); a claim advances the fair-share virtual
    # time (fair:*) and every transition moves the per-tenant counts (tcount:*).
    "supervisor": Role(
        read_write=_keys(
            "job:* jobev:* in:* out:* preview:* q:* delayed:* running:* waiting:* ended:* "
            "marker:* leases events idem:* claim:* reaper:* hosts host:* gpus:* paused drained "
            "services signal:* classes:* classver:* caps:* fair:* tcount:* runtimes:*"
        ),
        read_only=_keys("ctl:*"),
    ),
    "operator": Role(read_write=_keys("*")),
}

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def key_rules(namespace: str, role: Role) -> list[str]:
    prefix = "{" + namespace + "}:"
    rules = [f"~{prefix}{suffix}" for suffix in role.read_write]
    rules += [f"%R~{prefix}{suffix}" for suffix in role.read_only]
    return rules


def password_hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def user_rules(namespace: str, role_name: str, password: str) -> str:
    """The rules of one user after its name: ``on #hash resetkeys ... commands``."""
    parts = ["reset", "on", password_hash(password), "resetchannels", "resetkeys"]
    parts += key_rules(namespace, ROLES[role_name])
    parts.append(COMMANDS)
    return " ".join(parts)


def render(
    namespace: str,
    users: Mapping[str, str],
    passwords: Mapping[str, str],
    fmt: str = "setuser",
) -> str:
    """Every role's rules as ``ACL SETUSER`` commands or aclfile ``user`` lines."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r} must be 1-64 letters, digits or _.:-")
    lines = [f"# fleetq ACL roles for namespace {namespace!r} (scripts/acl_rules.py)"]
    for role_name in ROLE_NAMES:
        rules = user_rules(namespace, role_name, passwords[role_name])
        if fmt == "aclfile":
            lines.append(f"user {users[role_name]} {rules.removeprefix('reset ')}")
        else:
            lines.append(f"ACL SETUSER {users[role_name]} {rules}")
    return "\n".join(lines) + "\n"


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        role, sep, text = value.partition("=")
        if not sep or role not in ROLE_NAMES or not text:
            raise SystemExit(f"acl_rules: {what} takes ROLE=VALUE with ROLE in "
                             f"{', '.join(ROLE_NAMES)}, not {value!r}")  # fmt: skip
        out[role] = text
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("namespace", help="the fleet namespace (FLEETQ_NAMESPACE)")
    parser.add_argument("--format", choices=("setuser", "aclfile"), default="setuser")
    parser.add_argument("--user", action="append", default=[], metavar="ROLE=NAME",
                        help="user name of a role (default fleetq-ROLE)")  # fmt: skip
    parser.add_argument("--password", action="append", default=[], metavar="ROLE=SECRET",
                        help="default $FLEETQ_ACL_<ROLE>_PASSWORD, else random")  # fmt: skip
    args = parser.parse_args(argv)
    users = {role: f"fleetq-{role}" for role in ROLE_NAMES} | _pairs(args.user, "--user")
    given = _pairs(args.password, "--password")
    passwords = {}
    for role in ROLE_NAMES:
        password = given.get(role) or os.environ.get(f"FLEETQ_ACL_{role.upper()}_PASSWORD")
        if not password:
            password = secrets.token_urlsafe(24)
            print(f"acl_rules: generated password for {users[role]}: {password}", file=sys.stderr)
        passwords[role] = password
    try:
        sys.stdout.write(render(args.namespace, users, passwords, args.format))
    except ValueError as e:
        print(f"acl_rules: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
