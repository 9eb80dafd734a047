"""``switchyard rollout status|start|set-weight|pause|resume|promote|rollback|deprecate|
retire|allow|disallow|shadow|audit``: canary rollouts and routing tables, through a gateway's
admin API (``switchyard.cli.admin_api`` says which gateway, with which key)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from switchyard.cli.admin_api import AdminApi, add_common_options


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


AGREEMENT_NAMES = {"labels": "agreement", "entities": "entity F1", "text": "ROUGE-L"}


def format_shadow(shadow: dict[str, Any]) -> str:
    """One line (two with latency) on the shadow version and how far it agrees."""
    found = shadow["agreement"]
    name = AGREEMENT_NAMES.get(found["kind"], "agreement")
    if found["value"] is None:
        figure = f"{name} -"
    elif found["low"] is None:
        figure = f"{name} {found['value']:.1%}"
    else:
        figure = f"{name} {found['value']:.1%} (95% CI {found['low']:.1%}\u2013{found['high']:.1%})"
    extra = ""
    if found.get("mean_score_diff") is not None:
        extra = f"; mean score difference {found['mean_score_diff']:.3f}"
    if found.get("length_ratio") is not None:
        extra = f"; length ratio {found['length_ratio']:.2f}"
    latency = (
        f"latency stable {_ms(found['stable_latency_ms'])} ms,"
        f" shadow {_ms(found['shadow_latency_ms'])} ms (p95"
        f" {_ms(found['stable_latency_p95_ms'])} / {_ms(found['shadow_latency_p95_ms'])} ms);"
        f" {found['failed']} failed, {found['dropped']} dropped"
    )
    return (
        f"shadow {shadow['version']} ({shadow['share']:g}% of stable's requests): {figure},"
        f" n={found['n']}{extra}\n  {latency}"
    )


def format_status(status: dict[str, Any]) -> str:
    """Canary and stable side by side: weights, requests, errors, latency, labels."""
    rollout = status["rollout"]
    lines = []
    hosted = status.get("hosted", [])
    if rollout is None:
        lines.append("no routing table: every caller gets the default version")
        versions = [
            {
                "version": h["version"],
                "state": "default" if h["default"] else "hosted",
                "weight": 100 if h["default"] else None,
            }
            for h in hosted
        ]
    else:
        versions = rollout["versions"]
        canary_share = sum(v["weight"] for v in versions if v["state"] == "canary")
        for v in versions:
            if v["state"] == "stable":
                v["weight"] = 100 - canary_share
        flags = " (automatic steps paused)" if rollout["paused"] else ""
        lines.append(f"{rollout['model']}: table revision {rollout['revision']}{flags}")
    # Every version the backends host, or that has live figures, has a row.
    named = {v["version"] for v in versions}
    for extra in [h["version"] for h in hosted] + list(status["live"]):
        if extra not in named:
            named.add(extra)
            versions.append({"version": extra, "state": "hosted", "weight": None})
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
    if status.get("shadow"):
        lines.append(format_shadow(status["shadow"]))
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
            ("alpha", args.alpha),
            ("warmup_s", args.warmup),
            ("step_interval_s", args.step_interval),
            ("min_shadow_agreement", args.min_shadow_agreement),
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


def shadow(args: argparse.Namespace) -> int:
    api = AdminApi.from_args(args)
    if args.stop:
        if args.version or args.share is not None:
            raise SystemExit("--stop takes no version and no --share")
        return _show(args, api.call("DELETE", _path(args.model, "shadow"), {"reason": args.reason}))
    if not args.version or args.share is None:
        raise SystemExit("give the shadow version and --share (or --stop)")
    body = {"version": args.version, "share": args.share, "reason": args.reason}
    return _show(args, api.call("POST", _path(args.model, "shadow"), body))


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


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = commands.add_parser("rollout", help="canary rollouts and routing tables")
    actions = rollout.add_subparsers(dest="rollout_command", required=True)

    shown = actions.add_parser("status", help="a table and its live figures, side by side")
    shown.add_argument("model", nargs="?")
    add_common_options(shown, reason=False)
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
    started.add_argument("--alpha", type=float, help="significance level of a breach (0.05)")
    started.add_argument("--warmup", type=float, help="seconds not judged after a change (10)")
    started.add_argument("--steps", help="automatic steps, e.g. 5,25,50,100")
    started.add_argument("--step-interval", type=float, help="seconds at each step")
    started.add_argument(
        "--min-shadow-agreement",
        type=float,
        help="refuse the start unless the version's shadow agreement (lower 95%% bound,"
        " over --min-samples comparisons) reaches this (0-1)",
    )
    add_common_options(started)
    started.set_defaults(run=start)

    weighed = actions.add_parser("set-weight", help="set the canary's share of callers")
    weighed.add_argument("model")
    weighed.add_argument("weight", type=float)
    weighed.add_argument("--version", help="the canary, when there are several")
    add_common_options(weighed)
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
        add_common_options(sub)
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
        add_common_options(sub)
        sub.set_defaults(run=version_state("deprecated" if name == "deprecate" else "retired"))

    allowed = actions.add_parser("allow", help="send one caller to a version")
    allowed.add_argument("model")
    allowed.add_argument("caller", help="key:<id> or jwt:<subject>")
    allowed.add_argument("version")
    add_common_options(allowed)
    allowed.set_defaults(run=allow)

    unlisted = actions.add_parser("disallow", help="take a caller off the allowlist")
    unlisted.add_argument("model")
    unlisted.add_argument("caller")
    add_common_options(unlisted, reason=False)
    unlisted.set_defaults(run=disallow)

    shadowed = actions.add_parser(
        "shadow", help="copy a share of stable's requests to a version that answers no one"
    )
    shadowed.add_argument("model")
    shadowed.add_argument("version", nargs="?", help="the shadow version")
    shadowed.add_argument("--share", type=float, help="percent of stable's requests copied")
    shadowed.add_argument("--stop", action="store_true", help="stop copying (counts are kept)")
    add_common_options(shadowed)
    shadowed.set_defaults(run=shadow)

    audited = actions.add_parser("audit", help="who changed what, when and why")
    audited.add_argument("model")
    audited.add_argument("--limit", type=int, default=50)
    add_common_options(audited, reason=False)
    audited.set_defaults(run=audit)
