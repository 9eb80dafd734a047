"""``switchyard experiment MODEL``: each version's reported outcomes against the
baseline, as a table, JSON or CSV (``GET /v1/admin/experiments/{model}``)."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from switchyard.cli.admin_api import AdminApi, add_common_options


def _number(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if percent else f"{value:.3g}"


def format_results(found: dict[str, Any]) -> str:
    """One row per version and kind of outcome: its estimate with the 95% interval, and
    how it compares with the baseline."""
    lines = [f"{found['model']}: compared with {found['baseline'] or '-'}"]
    lines.append(f"{'version':<10}{'kind':<8}{'n':>6}  {'estimate (95% CI)':<28}result")
    for r in found["results"]:
        percent = r["kind"] == "rate"
        if r["kind"] == "labels":
            shown = ", ".join(f"{k} {v:.0%}" for k, v in r["shares"].items())
        else:
            low, high = _number(r["low"], percent), _number(r["high"], percent)
            shown = f"{_number(r['estimate'], percent)} ({low}-{high})"
        test = r["comparison"]
        told = r["note"] if test is None else f"{test['test']} {test['statistic']:.3g}: {r['note']}"
        lines.append(f"{r['version']:<10}{r['kind']:<8}{r['n']:>6}  {shown:<28}{told}")
    return "\n".join(lines)


def show(args: argparse.Namespace) -> int:
    path = "/v1/admin/experiments/" + quote(args.model, safe="")
    api = AdminApi.from_args(args)
    if args.csv:
        print(api.send("GET", path + "?format=csv").text, end="")
        return 0
    found = api.call("GET", path)
    print(json.dumps(found, indent=2) if args.json else format_results(found))
    return 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shown = commands.add_parser(
        "experiment", help="each version's reported outcomes against the baseline"
    )
    shown.add_argument("model")
    shown.add_argument("--csv", action="store_true", help="print the results as CSV")
    add_common_options(shown, reason=False)
    shown.set_defaults(run=show)
