"""``switchyard rollout ...`` and ``switchyard backends ...``: an operator's commands, sent
to a gateway's admin API. The gateway is ``--url`` (or ``SWITCHYARD_URL``), the credential
``--key`` (or ``SWITCHYARD_API_KEY``); against the local system both come from its
run-state file (the development admin key)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from switchyard.run_state import read_run_state

TIMEOUT_S = 30.0


class AdminApi:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AdminApi:
        state = read_run_state()
        url = args.url or os.environ.get("SWITCHYARD_URL") or state.get("gateway_url")
        key = args.key or os.environ.get("SWITCHYARD_API_KEY") or state.get("admin_key")
        if not url or not key:
            raise SystemExit(
                "no gateway: give --url and --key (or SWITCHYARD_URL and SWITCHYARD_API_KEY),"
                " or start the local system with switchyard up"
            )
        return cls(url, key)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            reply = httpx.request(
                method, self.url + path, json=body, headers=self.headers, timeout=TIMEOUT_S
            )
        except httpx.HTTPError as error:
            raise SystemExit(f"the gateway at {self.url} cannot be reached: {error}") from None
        if reply.status_code >= 400:
            try:
                message = reply.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = reply.text
            raise SystemExit(f"refused ({reply.status_code}): {message}")
        return reply.json() if reply.content else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_status(status: dict[str, Any]) -> str:
    """Canary and stable side by side: weights, requests, errors, latency, labels."""
    rollout = status["rollout"]
    lines = []
    if rollout is None:
        lines.append("no routing table: every caller gets the default version")
        versions = [{"version": v, "state": "-", "weight": None} for v in status["live"]]
    else:
        versions = rollout["versions"]
        canary_share = sum(v["weight"] for v in versions if v["state"] == "canary")
        for v in versions:
            if v["state"] == "stable":
                v["weight"] = 100 - canary_share
        flags = " (automatic steps paused)" if rollout["paused"] else ""
        lines.append(f"{rollout['model']}: table revision {rollout['revision']}{flags}")
    header = (
        f"{'version':<10}{'state':<12}{'weight':>8}{'requests':>10}{'errors':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'ttft p50':>10}  labels"
    )
    lines.append(header)
    for v in versions:
        live = status["live"].get(v["version"], {})
        latency = live.get("latency_ms", {})
        labels = ", ".join(f"{k} {share:.0%}" for k, share in live.get("labels", {}).items())
        weight = "-" if v["weight"] is None else f"{v['weight']:g}%"
        lines.append(
            f"{v['version']:<10}{v['state']:<12}{weight:>8}{live.get('requests', 0):>10}"
            f"{_percent(live.get('error_rate')) if live else '-':>8}"
            f"{_ms(latency.get('p50')):>9}{_ms(latency.get('p95')):>9}{_ms(latency.get('p99')):>9}"
            f"{_ms(live.get('ttft_ms', {}).get('p50')):>10}  {labels}"
        )
        if v.get("sunset"):
            lines.append(f"{'':<10}sunset {v['sunset']}")
    for version, verdict in status["guardrails"].items():
        lines.append(f"guardrails, {version}: {verdict}")
    if rollout is not None:
        for caller, version in rollout["allowlist"].items():
            lines.append(f"allowlist: {caller} -> {version}")
    lines.append(f"(this gateway routes with revision {status['routing_revision']})")
    return "\n".join(lines)


def _show(args: argparse.Namespace, answer: Any) -> int:
    if args.json:
        print(json.dumps(answer, indent=2))
    elif isinstance(answer, dict) and "live" in answer:
        print(format_status(answer))
    else:
        print(json.dumps(answer, indent=2))
    return 0


def _path(model: str, *rest: str) -> str:
    return "/v1/admin/rollouts/" + "/".join(quote(part, safe="") for part in (model, *rest))


def status(args: argparse.Namespace) -> int:
    api = AdminApi.from_args(args)
    if args.model is None:
        return _show(args, api.call("GET", "/v1/admin/rollouts"))
    return _show(args, api.call("GET", _path(args.model)))


def start(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"canary": args.canary, "weight": args.weight, "reason": args.reason}
    if args.stable:
        body["stable"] = args.stable
    guardrails = {
        name: value
        for name, value in (
            ("max_error_rate_delta", args.max_error_rate_delta),
            ("max_p95_ratio", args.max_p95_ratio),
            ("min_samples", args.min_samples),
            ("step_interval_s", args.step_interval),
        )
        if value is not None
    }
    if args.steps:
        guardrails["steps"] = [float(s) for s in args.steps.split(",")]
    if guardrails or args.guardrails:
        body["guardrails"] = guardrails
    return _show(args, AdminApi.from_args(args).call("POST", _path(args.model, "start"), body))


def set_weight(args: argparse.Namespace) -> int:
    body = {"weight": args.weight, "version": args.version, "reason": args.reason}
    return _show(args, AdminApi.from_args(args).call("POST", _path(args.model, "weight"), body))


def simple(action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        body: dict[str, Any] = {"reason": args.reason}
        if getattr(args, "version", None):
            body["version"] = args.version
        if getattr(args, "sunset", None):
            body["sunset"] = args.sunset
        answer = AdminApi.from_args(args).call("POST", _path(args.model, action), body)
        return _show(args, answer)

    return run


def version_state(state: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        body: dict[str, Any] = {"state": state, "reason": args.reason}
        if getattr(args, "sunset", None):
            body["sunset"] = args.sunset
        path = _path(args.model, "versions", args.version)
        return _show(args, AdminApi.from_args(args).call("POST", path, body))

    return run


def allow(args: argparse.Namespace) -> int:
    body = {"version": args.version, "reason": args.reason}
    path = _path(args.model, "allowlist", args.caller)
    return _show(args, AdminApi.from_args(args).call("PUT", path, body))


def disallow(args: argparse.Namespace) -> int:
    path = _path(args.model, "allowlist", args.caller)
    return _show(args, AdminApi.from_args(args).call("DELETE", path))


def audit(args: argparse.Namespace) -> int:
    path = _path(args.model, "audit") + f"?limit={args.limit}"
    entries = AdminApi.from_args(args).call("GET", path)["entries"]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        when = datetime.fromtimestamp(entry["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{when}  {entry['action']:<10} {entry['actor']:<40} {entry['reason']}")
    return 0


def backends_list(args: argparse.Namespace) -> int:
    answer = AdminApi.from_args(args).call("GET", "/v1/admin/backends")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for b in answer["backends"]:
        health = "healthy" if b["healthy"] else "UNHEALTHY"
        origin = "added" if b["added"] else "settings"
        print(
            f"{b['service']:<11} {b['address']:<28} {health:<10} {origin:<9}"
            f" {', '.join(b['versions'])}"
        )
    return 0


def backends_add(args: argparse.Namespace) -> int:
    body = {"service": args.service, "address": args.address, "reason": args.reason}
    AdminApi.from_args(args).call("POST", "/v1/admin/backends", body)
    print(f"added {args.service} backend {args.address}", file=sys.stderr)
    return 0


def backends_remove(args: argparse.Namespace) -> int:
    path = f"/v1/admin/backends/{quote(args.service)}/{quote(args.address, safe='')}"
    AdminApi.from_args(args).call("DELETE", path)
    print(f"removed {args.service} backend {args.address}", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser, reason: bool = True) -> None:
    parser.add_argument("--url", help="the gateway (default: SWITCHYARD_URL or the local one)")
    parser.add_argument("--key", help="an operator's key or token (default: SWITCHYARD_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    if reason:
        parser.add_argument("--reason", default="", help="why (kept in the audit trail)")


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = commands.add_parser("rollout", help="canary rollouts and routing tables")
    actions = rollout.add_subparsers(dest="rollout_command", required=True)

    shown = actions.add_parser("status", help="a table and its live figures, side by side")
    shown.add_argument("model", nargs="?")
    _common(shown, reason=False)
    shown.set_defaults(run=status)

    started = actions.add_parser("start", help="put a canary version in front of callers")
    started.add_argument("model")
    started.add_argument("--canary", required=True, help="the new version")
    started.add_argument("--weight", type=float, required=True, help="percent of callers")
    started.add_argument("--stable", help="the stable version (default: the listed default)")
    started.add_argument("--guardrails", action="store_true", help="the default guardrails")
    started.add_argument("--max-error-rate-delta", type=float)
    started.add_argument("--max-p95-ratio", type=float)
    started.add_argument("--min-samples", type=int)
    started.add_argument("--steps", help="automatic steps, e.g. 5,25,50,100")
    started.add_argument("--step-interval", type=float, help="seconds at each step")
    _common(started)
    started.set_defaults(run=start)

    weighed = actions.add_parser("set-weight", help="set the canary's share of callers")
    weighed.add_argument("model")
    weighed.add_argument("weight", type=float)
    weighed.add_argument("--version", help="the canary, when there are several")
    _common(weighed)
    weighed.set_defaults(run=set_weight)

    for name, action, help_text in (
        ("pause", "pause", "hold automatic steps"),
        ("resume", "resume", "go on with automatic steps"),
        ("promote", "promote", "make the canary stable (the old stable is deprecated)"),
        ("rollback", "rollback", "send the canary's callers back to stable"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("model")
        if name in ("promote", "rollback"):
            sub.add_argument("--version", help="the canary, when there are several")
        if name == "promote":
            sub.add_argument("--sunset", help="when the old stable stops answering (ISO 8601)")
        _common(sub)
        sub.set_defaults(run=simple(action))

    for name, help_text in (
        ("deprecate", "answer with Deprecation and Sunset headers"),
        ("retire", "answer 410 Gone"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("model")
        sub.add_argument("version")
        if name == "deprecate":
            sub.add_argument("--sunset", help="when it stops answering (ISO 8601)")
        _common(sub)
        sub.set_defaults(run=version_state("deprecated" if name == "deprecate" else "retired"))

    allowed = actions.add_parser("allow", help="send one caller to a version")
    allowed.add_argument("model")
    allowed.add_argument("caller", help="key:<id> or jwt:<subject>")
    allowed.add_argument("version")
    _common(allowed)
    allowed.set_defaults(run=allow)

    unlisted = actions.add_parser("disallow", help="take a caller off the allowlist")
    unlisted.add_argument("model")
    unlisted.add_argument("caller")
    _common(unlisted, reason=False)
    unlisted.set_defaults(run=disallow)

    audited = actions.add_parser("audit", help="who changed what, when and why")
    audited.add_argument("model")
    audited.add_argument("--limit", type=int, default=50)
    _common(audited, reason=False)
    audited.set_defaults(run=audit)

    backends = commands.add_parser("backends", help="backend addresses the gateways call")
    backend_actions = backends.add_subparsers(dest="backends_command", required=True)
    listed = backend_actions.add_parser("list", help="every backend, its health and versions")
    _common(listed, reason=False)
    listed.set_defaults(run=backends_list)
    added = backend_actions.add_parser("add", help="add a backend address (every replica)")
    added.add_argument("service", choices=("classifier", "ner", "summarizer"))
    added.add_argument("address", help="host:port")
    _common(added)
    added.set_defaults(run=backends_add)
    removed = backend_actions.add_parser("remove", help="remove an added backend address")
    removed.add_argument("service", choices=("classifier", "ner", "summarizer"))
    removed.add_argument("address")
    _common(removed, reason=False)
    removed.set_defaults(run=backends_remove)
