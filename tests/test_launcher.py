"""``switchyard up`` starts every service, waits for SERVING, and stops them on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from switchyard.client import ClassifierClient, NerClient, SummarizerClient
from tests.support import FULL_NAMES, free_port


def test_up_serves_every_service_and_the_gateway_and_stops_cleanly_on_ctrl_c(
    prepared_models: Path, tmp_path: Path
) -> None:
    ports = {name: (free_port(), free_port()) for name in FULL_NAMES}
    gateway_port = free_port()
    # Its own state folder (run-state file, local Redis), the prepared models all the same.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
        "SWITCHYARD_GATEWAY_PORT": str(gateway_port),
        "SWITCHYARD_HOME": str(tmp_path),
    }
    for name, (port, metrics_port) in ports.items():
        prefix = f"SWITCHYARD_{name.upper()}_"
        env |= {
            f"{prefix}PORT": str(port),
            f"{prefix}METRICS_PORT": str(metrics_port),
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}MODELS_DIR": str(prepared_models),
        }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "switchyard", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        banner = []
        for line in launcher.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        assert "Switchyard is up" in text, text
        for name, full_name in FULL_NAMES.items():
            assert f"127.0.0.1:{ports[name][0]} ({full_name})" in text

        with ClassifierClient(f"127.0.0.1:{ports['classifier'][0]}", timeout_s=60) as classifier:
            reply = classifier.classify(["I love this"])
            assert reply.results[0].labels[0].label == "positive"
        with NerClient(f"127.0.0.1:{ports['ner'][0]}", timeout_s=60) as ner:
            found = ner.extract_entities(["Ingrid Halvorsen moved to Lisbon."])
            assert "Lisbon" in {e.text for e in found.results[0].entities}
        with SummarizerClient(f"127.0.0.1:{ports['summarizer'][0]}") as summarizer:
            assert summarizer.summarize("Paris is in France.", max_new_tokens=8).summary

        assert f"http://127.0.0.1:{gateway_port}/" in text
        # The development keys are printed, each on a line of its own, and kept in the
        # run-state file, readable by the user only.
        client_key = banner[banner.index("  client key (development):\n") + 1].strip()
        run_state = tmp_path / "run.json"
        assert run_state.stat().st_mode & 0o777 == 0o600
        state = json.loads(run_state.read_text())
        assert state["client_key"] == client_key
        assert state["redis_url"].startswith("redis://127.0.0.1:")
        classify = f"http://127.0.0.1:{gateway_port}/v1/classify"
        assert httpx.post(classify, json={"text": "I love this"}, timeout=60).status_code == 401
        answer = httpx.post(
            classify,
            json={"text": "I love this"},
            headers={"Authorization": f"Bearer {client_key}"},
            timeout=60,
        )
        assert answer.status_code == 200
        assert answer.json()["results"][0]["labels"][0]["label"] == "positive"

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=120) == 0
        assert not run_state.exists()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()
