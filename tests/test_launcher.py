"""``switchyard up`` starts the services, waits for SERVING, and stops them on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from switchyard.classifier.v1 import classifier_pb2 as pb
from switchyard.classifier.v1 import classifier_pb2_grpc
from tests.support import free_port


def test_up_serves_the_classifier_and_stops_cleanly_on_ctrl_c(prepared_models: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "SWITCHYARD_CLASSIFIER_PORT": str(port),
        "SWITCHYARD_CLASSIFIER_METRICS_PORT": str(metrics_port),
        "SWITCHYARD_CLASSIFIER_HOST": "127.0.0.1",
    }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "switchyard", "up", "--services", "classifier"],
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
        assert f"127.0.0.1:{port}" in text
        assert "switchyard.classifier.v1.ClassifierService" in text

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            reply = stub.Classify(pb.ClassifyRequest(texts=["I love this"]), timeout=60)
            assert reply.results[0].labels[0].label == "positive"

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=120) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()
