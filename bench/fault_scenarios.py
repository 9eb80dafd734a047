"""The scenarios of ``make faults``, each under a bounded closed-loop load through the
gateways of a ``FaultSystem``; each returns its counts: calls sent, succeeded, and every
failure by kind, with what was noticed along the way."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from bench.fault_streams import StreamRun
from bench.fault_system import CLASSIFIERS, GATEWAYS, FaultSystem
from switchyard.gateway_load import OK, GatewayLoad

CONCURRENCY = 8
BACK_S = 300.0
"""How long a restarted replica may take to load its model and pass Envoy's checks."""
ANSWERS_S = 120.0


def counts(load: GatewayLoad) -> dict[str, Any]:
    snapshot = load.snapshot()
    found = {"sent": sum(snapshot.values()), "succeeded": snapshot[OK], "failed": load.failures()}
    if load.first_messages:
        found["first_messages"] = dict(load.first_messages)
    return found


def _wait(system: FaultSystem, load: GatewayLoad, answers: int) -> None:
    target = load.sent + answers
    if not system.tend_until(lambda: load.sent >= target, ANSWERS_S):
        raise RuntimeError(f"the load stalled at {load.sent} answers")


def replica_fault(system: FaultSystem, signum: signal.Signals) -> dict[str, Any]:
    """Signal one classifier replica under load; wait until the supervisor started it
    again, Envoy's health check passed it, and Envoy sent it calls again."""
    name = CLASSIFIERS[1] if signum == signal.SIGKILL else CLASSIFIERS[0]
    address = system.address(name)
    urls = [system.url(g) for g in GATEWAYS]
    restarts = system.restarts(name)
    with GatewayLoad(urls, system.key, CONCURRENCY) as load:
        _wait(system, load, 100)
        system.signal(name, signum)
        restarted = system.tend_until(
            lambda: system.restarts(name) > restarts and system.running(name), BACK_S
        )
        healthy = system.tend_until(
            lambda: (s := system.classifier_hosts().get(address)) is not None and s.healthy,
            BACK_S,
        )
        before = system.classifier_hosts()[address].requests
        served = system.tend_until(
            lambda: system.classifier_hosts()[address].requests > before + 10, ANSWERS_S
        )
        _wait(system, load, 100)
    return counts(load) | {
        "replica": name,
        "restarted_by_supervisor": restarted,
        "healthy_again_in_envoy": healthy,
        "served_calls_again": served,
    }


def _probe(system: FaultSystem, gateway: str) -> tuple[int, bool]:
    """One classify call: its status, and whether it carried rate-limit headers."""
    headers = {"Authorization": f"Bearer {system.key}"}
    reply = httpx.post(
        f"{system.url(gateway)}/v1/classify",
        json={"text": "a probe of the limits"},
        headers=headers,
        timeout=60,
    )
    return reply.status_code, "x-ratelimit-remaining" in reply.headers


def redis_outage(system: FaultSystem) -> dict[str, Any]:
    """Stop Redis under load and start it again: ``gateway-1`` (fail-open) keeps serving,
    ``gateway-2`` (fail-closed) refuses with 503 and Retry-After, then both recover with
    their limits counted again; neither gateway restarts."""
    opened, closed = (system.url(g) for g in GATEWAYS)
    gateway_pids = [system.pid(g) for g in GATEWAYS]
    half = CONCURRENCY // 2
    with (
        GatewayLoad([opened], system.key, half) as open_load,
        GatewayLoad([closed], system.key, half) as closed_load,
    ):
        _wait(system, open_load, 50)
        open_mark, closed_mark = open_load.snapshot(), closed_load.snapshot()
        system.stop_redis()
        _wait(system, open_load, 100)
        _wait(system, closed_load, 100)
        during = {
            "fail_open": dict(open_load.snapshot() - open_mark),
            "fail_closed": dict(closed_load.snapshot() - closed_mark),
            "fail_closed_refusals_with_retry_after": closed_load.retry_after_seen,
        }
        probe_during = _probe(system, GATEWAYS[0])
        system.start_redis()
        recovered = system.tend_until(lambda: _probe(system, GATEWAYS[1])[0] == 200, ANSWERS_S)
        open_mark, closed_mark = open_load.snapshot(), closed_load.snapshot()
        _wait(system, open_load, 100)
        _wait(system, closed_load, 100)
    after_open = open_load.snapshot() - open_mark
    after_closed = closed_load.snapshot() - closed_mark
    return {
        "during_outage": during,
        "after_restart": {"fail_open": dict(after_open), "fail_closed": dict(after_closed)},
        "totals": {"fail_open": counts(open_load), "fail_closed": counts(closed_load)},
        "fail_open_limits_counted_during_outage": probe_during[1],
        "fail_closed_recovered": recovered,
        "limits_counted_again": _probe(system, GATEWAYS[0])[1] and _probe(system, GATEWAYS[1])[1],
        "gateways_restarted": [system.pid(g) for g in GATEWAYS] != gateway_pids,
    }


def gateway_stop_with_streams(system: FaultSystem, streams: int) -> dict[str, Any]:
    """Open ``streams`` summary streams on ``gateway-1``, SIGTERM it once each has a
    token, and resume every stream through ``gateway-2``."""
    first, other = (system.url(g) for g in GATEWAYS)
    runs = [StreamRun(system.key, max_new_tokens=128) for _ in range(streams)]
    threads = [threading.Thread(target=r.run, args=(first, other), daemon=True) for r in runs]
    for thread in threads:
        thread.start()
    # The stop comes while the first stream generates and the others wait their turn at
    # the summarizer (it runs few at once on this machine).
    system.tend_until(lambda: any(r.first_token.is_set() for r in runs), ANSWERS_S)
    generating = sum(r.first_token.is_set() and not r.left_first_gateway.is_set() for r in runs)
    waiting = sum(not r.first_token.is_set() for r in runs)
    system.signal(GATEWAYS[0], signal.SIGTERM)
    system.tend_until(lambda: not any(t.is_alive() for t in threads), 300.0)
    # gateway-1 comes back (the supervisor), ready for what follows.
    system.tend_until(lambda: _ready(system, GATEWAYS[0]), BACK_S)
    outcomes: dict[str, int] = {}
    for run in runs:
        outcome = run.outcome or "still running at the deadline"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    cut = sum(n for o, n in outcomes.items() if o.startswith("cut"))
    return {
        "streams": streams,
        "generating_at_the_stop": generating,
        "not_started_at_the_stop": waiting,
        "outcomes": outcomes,
        "cut_connections": cut,
        "completed": sum(n for o, n in outcomes.items() if o.endswith("done")),
    }


def _ready(system: FaultSystem, gateway: str) -> bool:
    try:
        return httpx.get(f"{system.url(gateway)}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def rss_bytes(pid: int) -> int:
    """Resident memory of a child's process group (the child and its model workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rpartition(")")[2].split()
            if int(fields[2]) != pid:  # the process group id
                continue
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


def soak(system: FaultSystem, minutes: float) -> dict[str, Any]:
    """Saturation for ``minutes``: no unexpected 5xx, and memory of the gateways and the
    replicas after warm-up (a fifth of the run) against the end."""
    urls = [system.url(g) for g in GATEWAYS]
    watched = [*GATEWAYS, *CLASSIFIERS]
    seconds = minutes * 60
    restarts = {name: system.restarts(name) for name in watched}
    with GatewayLoad(urls, system.key, CONCURRENCY) as load:
        system.tend_for(seconds / 5)
        warm = {name: rss_bytes(system.pid(name)) for name in watched}
        system.tend_for(seconds * 4 / 5)
        end = {name: rss_bytes(system.pid(name)) for name in watched}
    growth = {name: round(100 * (end[name] - warm[name]) / warm[name], 2) for name in watched}
    return counts(load) | {
        "minutes": minutes,
        "rss_mb_after_warmup": {n: round(v / 2**20, 1) for n, v in warm.items()},
        "rss_mb_at_end": {n: round(v / 2**20, 1) for n, v in end.items()},
        "rss_growth_percent": growth,
        "restarts": {name: system.restarts(name) - restarts[name] for name in watched},
    }
