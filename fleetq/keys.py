"""The key schema: the one place that names every Redis key fleetq uses.

Every key starts with the hash tag ``{<namespace>}:`` so that all keys of a fleet hash to one
Redis Cluster slot and every multi-key script runs there too. The Lua scripts build the keys of a
job from the same prefix with the same suffixes (``lua/lib/keys.lua``); a test checks the two agree.

Layout (``P`` is the prefix, e.g. ``{fleetq}:``):

=========================  ======  ===========================================================
key                        type    holds
=========================  ======  ===========================================================
P job:<id>                 hash    the job record (fields in :mod:`fleetq.model`)
P jobev:<id>               stream  this job's events (claimed, progress, cancel, finish...)
P out:<id>                 hash    output file bytes, field = output index
P in:<id>                  hash    input file bytes, field = file name (kept as long as
                                   the job)
P preview:<id>             hash    the latest live preview of a running job (image bytes,
                                   content type, time), short TTL; gone once it stops running
P q:<svc>                  zset    queued jobs without requirements, score = priority band *
                                   2^41 + submit seq
P q:<svc>:<class>          zset    queued jobs of one requirement class (docs/SCHEDULING.md)
P classes:<svc>            hash    requirement class id -> canonical requirements (JSON); a
                                   class is never removed
P classver:<svc>           string  version of the class set, moved when a class is added
P delayed:<svc>            zset    jobs waiting out a retry backoff, score = ready time (ms)
P waiting:<svc>            zset    queued and delayed jobs, score = enqueue time (oldest wait)
P running:<svc>            zset    running jobs, score = claim time (ms)
P ended:<svc>:<state>      zset    completed / failed / cancelled jobs, score = finish time
P marker:<svc>             zset    wake-up marker for blocked claimers (BZPOPMIN)
P marker:<svc>:<class>     zset    the same, for the claimers able to run one class
P runtimes:<svc>           hash    mean run time and runs on record per requirement class
                                   (``ms:<class>``, ``n:<class>``; ``*``: the whole service),
                                   updated by each completion; the ETA reads it (fleetq/eta.py)
P leases                   zset    running jobs, score = lease expiry (ms); the reaper's index
P events                   stream  the fleet event log, capped
P seq                      string  submit counter (FIFO tie-break)
P services                 set     every service name ever submitted to
P tenants                  hash    tenant -> fair-share weight (only weights other than 1)
P fair:<svc>               hash    fair-share state per priority band b: ``V:<b>`` virtual
                                   time, ``E:<b>`` epoch, ``N:<b>`` live tagged jobs,
                                   ``F:<b>:<tenant>`` the tenant's next start (lua/lib/fair.lua)
P tcount:<svc>             hash    ``queued:<tenant>`` / ``running:<tenant>`` -> job count
P paused                   set     paused services
P drained                  set     drained ``host`` and ``host:gpu`` targets
P lastreq                  hash    ``paused:<svc>`` / ``drained:<target>`` -> request id of the
                                   last change (a resent pause or drain is answered as the
                                   first); ``by:paused:<svc>`` / ``by:drained:<target>`` ->
                                   the operator who made it
P idem:<key>               string  idempotency key -> job id
P claim:<token>            string  lease token -> job id while it runs (a resent claim
                                   is answered with the job the first one leased)
P reaper:lock              string  single-flight lock of the reaper
P reaper:last              string  time of the last reaper pass (detects outages)
P reaper:grace             string  no reaping before this time (after an outage)
P hosts                    zset    supervisor host ids, score = last heartbeat (ms)
P host:<host>              string  JSON host record, expires
P gpus:<host>              string  JSON list of GPU readings of one host, expires
P caps:<digest>            string  JSON capabilities of GPUs (by content digest), expires
P ctl:<host>               stream  operator commands for one supervisor (fault injection)
P signal:<host>            zset    wake-up signal of one supervisor (BZPOPMIN, with its work
                                   markers): ``streams`` when a stream it follows has news
                                   (an operator command, a cancel of its running job),
                                   ``gate`` when a drain of the host or one of its GPUs changed
=========================  ======  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

TERMINAL_STATES = ("completed", "failed", "cancelled")


def wake_channel(service: str, class_id: str) -> str:
    """What claimers of one requirement class wait on: ``service`` for the empty class, else
    ``service:class`` (service names never hold a colon); ``Keys.marker`` of it is the key."""
    return f"{service}:{class_id}" if class_id else service


def channel_service(channel: str) -> str:
    """The service of a wake channel."""
    return channel.partition(":")[0]


@dataclass(frozen=True)
class Keys:
    """Builds every key of one namespace."""

    namespace: str

    @property
    def prefix(self) -> str:
        return "{" + self.namespace + "}:"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def job_events(self, job_id: str) -> str:
        return f"{self.prefix}jobev:{job_id}"

    def outputs(self, job_id: str) -> str:
        return f"{self.prefix}out:{job_id}"

    def inputs(self, job_id: str) -> str:
        return f"{self.prefix}in:{job_id}"

    def preview(self, job_id: str) -> str:
        return f"{self.prefix}preview:{job_id}"

    def queue(self, service: str) -> str:
        return f"{self.prefix}q:{service}"

    def class_queue(self, service: str, class_id: str) -> str:
        """The queue of one requirement class; the empty class is the plain service queue."""
        return self.queue(wake_channel(service, class_id))

    def classes(self, service: str) -> str:
        return f"{self.prefix}classes:{service}"

    def class_version(self, service: str) -> str:
        return f"{self.prefix}classver:{service}"

    def capabilities(self, digest: str) -> str:
        """One published capabilities document (``fleetq.schedulable``)."""
        return f"{self.prefix}caps:{digest}"

    def delayed(self, service: str) -> str:
        return f"{self.prefix}delayed:{service}"

    def waiting(self, service: str) -> str:
        return f"{self.prefix}waiting:{service}"

    def running(self, service: str) -> str:
        return f"{self.prefix}running:{service}"

    def ended(self, service: str, state: str) -> str:
        return f"{self.prefix}ended:{service}:{state}"

    def marker(self, service: str) -> str:
        return f"{self.prefix}marker:{service}"

    def runtimes(self, service: str) -> str:
        return f"{self.prefix}runtimes:{service}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def claim(self, token: str) -> str:
        return f"{self.prefix}claim:{token}"

    def fair(self, service: str) -> str:
        return f"{self.prefix}fair:{service}"

    def tenant_counts(self, service: str) -> str:
        return f"{self.prefix}tcount:{service}"

    def host(self, host: str) -> str:
        return f"{self.prefix}host:{host}"

    def gpus(self, host: str) -> str:
        return f"{self.prefix}gpus:{host}"

    def control(self, host: str) -> str:
        return f"{self.prefix}ctl:{host}"

    def signal(self, host: str) -> str:
        return f"{self.prefix}signal:{host}"

    @property
    def leases(self) -> str:
        return self.prefix + "leases"

    @property
    def events(self) -> str:
        return self.prefix + "events"

    @property
    def seq(self) -> str:
        return self.prefix + "seq"

    @property
    def services(self) -> str:
        return self.prefix + "services"

    @property
    def tenants(self) -> str:
        return self.prefix + "tenants"

    @property
    def paused(self) -> str:
        return self.prefix + "paused"

    @property
    def drained(self) -> str:
        return self.prefix + "drained"

    @property
    def last_request(self) -> str:
        return self.prefix + "lastreq"

    @property
    def reaper_lock(self) -> str:
        return self.prefix + "reaper:lock"

    @property
    def reaper_last(self) -> str:
        return self.prefix + "reaper:last"

    @property
    def reaper_grace(self) -> str:
        return self.prefix + "reaper:grace"

    @property
    def hosts(self) -> str:
        return self.prefix + "hosts"
