"""``switchyard jobs submit|list|status|download|cancel``: batch jobs through the
gateway's Files and Batches API, for people. ``submit`` uploads a JSONL file of requests,
starts the batch and shows its progress until it ends.

The gateway is ``--url`` (or ``SWITCHYARD_URL``), the credential ``--key`` (or
``SWITCHYARD_API_KEY``); against the local system both come from its run-state file (the
development client key). A caller sees only its own batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from switchyard.cli.admin_api import AdminApi
from switchyard.run_state import gateway_trust, read_run_state

ENDED = ("completed", "failed", "cancelled", "expired")
POLL_S = 1.0
UPLOAD_TIMEOUT_S = 600.0


def api(args: argparse.Namespace) -> AdminApi:
    state = read_run_state()
    url = args.url or os.environ.get("SWITCHYARD_URL") or state.get("gateway_url")
    key = (
        args.key
        or os.environ.get("SWITCHYARD_API_KEY")
        or state.get("client_key")
        or state.get("admin_key")
    )
    if not url or not key:
        raise SystemExit(
            "no gateway: give --url and --key (or SWITCHYARD_URL and SWITCHYARD_API_KEY),"
            " or start the local system with switchyard up"
        )
    return AdminApi(url, key, gateway_trust(url, state))


def _refused(reply: httpx.Response) -> SystemExit:
    try:
        message = reply.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = reply.text
    return SystemExit(f"refused ({reply.status_code}): {message}")


def upload(gateway: AdminApi, path: Path) -> dict[str, Any]:
    """The file uploaded (streamed from disk), as the gateway records it."""
    with path.open("rb") as handle:
        try:
            reply = httpx.post(
                f"{gateway.url}/v1/files",
                files={"file": (path.name, handle, "application/jsonl")},
                data={"purpose": "batch"},
                headers=gateway.headers,
                timeout=UPLOAD_TIMEOUT_S,
                verify=gateway.verify,
            )
        except httpx.HTTPError as error:
            raise SystemExit(f"the gateway at {gateway.url} cannot be reached: {error}") from None
    if reply.status_code >= 400:
        raise _refused(reply)
    answer: dict[str, Any] = reply.json()
    return answer


def follow(gateway: AdminApi, batch: dict[str, Any]) -> dict[str, Any]:
    """Poll the batch until it ends, with a progress bar of its lines on stderr."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}, {task.fields[failed]} failed"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(batch["id"], total=None, status=batch["status"], failed=0)
        while True:
            counts = batch.get("request_counts") or {}
            progress.update(
                task,
                total=counts.get("total") or None,
                completed=counts.get("completed", 0) + counts.get("failed", 0),
                status=batch["status"],
                failed=counts.get("failed", 0),
            )
            if batch["status"] in ENDED:
                return batch
            time.sleep(POLL_S)
            batch = gateway.call("GET", f"/v1/batches/{batch['id']}")


def summary(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    line = (
        f"{batch['id']}  {batch['status']:<10} {batch['endpoint']:<14}"
        f" {counts.get('completed', 0)}/{counts.get('total', 0)} done,"
        f" {counts.get('failed', 0)} failed"
    )
    for error in (batch.get("errors") or {}).get("data") or []:
        line += f"\n  error: {error.get('message')}"
    return line


def jobs_submit(args: argparse.Namespace) -> int:
    gateway = api(args)
    uploaded = upload(gateway, Path(args.file))
    metadata = dict(pair.split("=", 1) for pair in args.metadata)
    body = {
        "input_file_id": uploaded["id"],
        "endpoint": args.endpoint,
        "completion_window": "24h",
        **({"metadata": metadata} if metadata else {}),
    }
    batch = gateway.call("POST", "/v1/batches", body)
    if not args.no_wait:
        batch = follow(gateway, batch)
    print(json.dumps(batch, indent=2) if args.json else summary(batch))
    return 0 if batch["status"] not in ("failed", "expired") else 1


def jobs_list(args: argparse.Namespace) -> int:
    gateway = api(args)
    path = "/v1/admin/batches" if args.everyone else "/v1/batches"
    answer = gateway.call("GET", f"{path}?limit={args.limit}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    for batch in answer["data"]:
        print(summary(batch) + (f"  ({batch['owner']})" if args.everyone else ""))
    return 0


def jobs_status(args: argparse.Namespace) -> int:
    batch = api(args).call("GET", f"/v1/batches/{args.batch}")
    print(json.dumps(batch, indent=2) if args.json else summary(batch))
    return 0


def jobs_download(args: argparse.Namespace) -> int:
    gateway = api(args)
    batch = gateway.call("GET", f"/v1/batches/{args.batch}")
    file_id = batch["error_file_id" if args.errors else "output_file_id"]
    if file_id is None:
        print(f"{args.batch} has no {'error' if args.errors else 'output'} file", file=sys.stderr)
        return 1
    url = f"{gateway.url}/v1/files/{file_id}/content"
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(Path(args.output).open("wb")) if args.output else sys.stdout.buffer
        )
        reply = stack.enter_context(
            httpx.stream(
                "GET", url, headers=gateway.headers, timeout=UPLOAD_TIMEOUT_S, verify=gateway.verify
            )
        )
        if reply.status_code >= 400:
            reply.read()
            raise _refused(reply)
        for chunk in reply.iter_bytes():
            out.write(chunk)
    return 0


def jobs_cancel(args: argparse.Namespace) -> int:
    batch = api(args).call("POST", f"/v1/batches/{args.batch}/cancel")
    print(json.dumps(batch, indent=2) if args.json else summary(batch))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the gateway (default: SWITCHYARD_URL or the local one)")
    parser.add_argument("--key", help="your API key or token (default: SWITCHYARD_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the gateway's JSON answer")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="batch jobs: submit a JSONL file, follow, download")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    submit = actions.add_parser("submit", help="upload a JSONL file of requests and run it")
    submit.add_argument("file", help='one request per line: {"custom_id", "method", "url", "body"}')
    submit.add_argument("--endpoint", required=True, help="the route every line calls")
    submit.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="kept with it"
    )
    submit.add_argument("--no-wait", action="store_true", help="start it and return")
    _common(submit)
    submit.set_defaults(run=jobs_submit)
    listed = actions.add_parser("list", help="your batches, newest first")
    listed.add_argument("--limit", type=int, default=20)
    listed.add_argument("--everyone", action="store_true", help="every caller's (operators)")
    _common(listed)
    listed.set_defaults(run=jobs_list)
    for name, run, what in (
        ("status", jobs_status, "a batch's status and counts"),
        ("cancel", jobs_cancel, "stop a batch at its next checkpoint"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("batch")
        _common(action)
        action.set_defaults(run=run)
    download = actions.add_parser("download", help="a batch's output (or error) file")
    download.add_argument("batch")
    download.add_argument("--errors", action="store_true", help="the error file instead")
    download.add_argument("-o", "--output", help="write here (default: standard output)")
    _common(download)
    download.set_defaults(run=jobs_download)
