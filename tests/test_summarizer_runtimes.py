"""The summarizer's runtimes side by side on the real SmolLM2-135M weights: the CTranslate2
version prepare converts gives the transformers reference's tokens and pieces, stops on a
cancel, repeats a seeded sample; the agreement gate refuses a version that disagrees; and
a missing ctranslate2 package fails only the version that needs it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from services.prepare import MARKER
from services.summarizer.agreement import (
    NEXT_TOKEN_FLOOR,
    AgreementRefused,
    check,
    compare,
    generated_ids,
    greedy_ids,
    next_token_agreement,
    read_heldout,
)
from services.summarizer.ctranslate2_model import Ctranslate2Summarizer
from services.summarizer.generation import GenerationJob, GenerationOptions, Usage
from services.summarizer.model import CausalLmSummarizer
from switchyard.common.v1 import models_pb2
from switchyard.summarizer.v1 import summarizer_pb2 as pb
from switchyard.summarizer.v1 import summarizer_pb2_grpc
from tests.support import SUMMARIZER, ServiceProcess
from tests.test_summarizer_service import EIFFEL

TEXTS = [
    EIFFEL,
    "Paris is the capital of France and its largest city.",  # ends on the end token early
    "The night train from Vienna reached Venice two hours late after snow blocked the pass."
    " Passengers were given breakfast on board, and the railway promised refunds.",
]
GREEDY = GenerationOptions(max_new_tokens=40)


@dataclass
class Generation:
    pieces: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    """The tokens generated so far as each piece went out."""
    ids: list[int] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def generate(
    model: CausalLmSummarizer | Ctranslate2Summarizer, text: str, options: GenerationOptions
) -> Generation:
    made = Generation()

    def on_piece(piece: str) -> None:
        made.pieces.append(piece)
        made.counts.append(job.generated_tokens)

    job = GenerationJob(text, options, on_piece, on_token=made.ids.append)
    made.usage = model.generate(job)
    return made


@pytest.fixture(scope="module")
def reference(prepared_models: Path) -> CausalLmSummarizer:
    return CausalLmSummarizer(str(prepared_models / "summarizer" / "v1"))


@pytest.fixture(scope="module")
def converted(prepared_models: Path) -> Ctranslate2Summarizer:
    model = Ctranslate2Summarizer(str(prepared_models / "summarizer" / "v1-ct2"), threads=1)
    model.warm_up()
    return model


@pytest.mark.parametrize("text", TEXTS)
def test_the_converted_version_streams_the_reference_pieces(
    reference: CausalLmSummarizer, converted: Ctranslate2Summarizer, text: str
) -> None:
    expected = generate(reference, text, GREEDY)
    made = generate(converted, text, GREEDY)
    assert made.ids == expected.ids
    assert made.pieces == expected.pieces, "the same tokens make the same pieces"
    assert made.counts == expected.counts
    assert (made.usage.prompt_tokens, made.usage.generated_tokens, made.usage.finish_reason) == (
        expected.usage.prompt_tokens,
        expected.usage.generated_tokens,
        expected.usage.finish_reason,
    )
    assert made.usage.time_to_first_token_s > 0


def cancelled_after_two_pieces(model: CausalLmSummarizer | Ctranslate2Summarizer) -> Usage:
    """The usage of a long generation cancelled, from another thread as the event loop
    does, once its second piece is out."""
    two_pieces = threading.Event()
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 2:
            two_pieces.set()

    job = GenerationJob(EIFFEL, GenerationOptions(max_new_tokens=400), on_piece)
    finished: list[Usage] = []
    worker = threading.Thread(target=lambda: finished.append(model.generate(job)))
    worker.start()
    assert two_pieces.wait(120)
    job.cancelled.set()
    worker.join(120)
    (usage,) = finished
    return usage


def test_a_cancel_stops_the_converted_version_within_a_token(
    converted: Ctranslate2Summarizer,
) -> None:
    usage = cancelled_after_two_pieces(converted)
    assert usage.finish_reason == "cancelled"
    assert usage.tokens_after_cancel <= 1
    assert usage.generated_tokens < 400
    # CTranslate2 drops the stopped batch as the call returns, and decodes nothing more:
    # the rest of the 400 tokens would keep it busy for many seconds.
    deadline = time.monotonic() + 5
    while converted.generator.num_active_batches and time.monotonic() < deadline:
        time.sleep(0.001)
    assert converted.generator.num_active_batches == 0


def test_a_seeded_sample_repeats_on_the_converted_version(
    converted: Ctranslate2Summarizer,
) -> None:
    seeded = GenerationOptions(max_new_tokens=16, temperature=0.8, top_p=0.95, seed=1234)
    first = generate(converted, TEXTS[2], seeded)
    again = generate(converted, TEXTS[2], seeded)
    assert first.ids == again.ids and first.pieces == again.pieces
    assert first.usage.generated_tokens == len(first.ids)
    greedy = generate(converted, TEXTS[2], GenerationOptions(max_new_tokens=16))
    assert first.ids != greedy.ids
    # Without a seed, CTranslate2 samples by itself, with the same limits.
    unseeded = GenerationOptions(max_new_tokens=8, temperature=1.2, top_p=0.95)
    assert generate(converted, TEXTS[2], unseeded).usage.generated_tokens == 8


def test_the_gate_refuses_a_version_whose_output_differs(
    reference: CausalLmSummarizer, converted: Ctranslate2Summarizer
) -> None:
    texts = read_heldout()[:2]
    expected = greedy_ids(reference, texts, 16)
    assert all(len(ids) == 16 for ids in expected)
    check(compare(expected, greedy_ids(converted, texts, 16), 16), "none", "v1-ct2", "v1")

    # Half the tokens: the same start, then nothing where the reference goes on.
    shorter = compare(expected, greedy_ids(converted, texts, 8), 16)
    assert (shorter.equal, shorter.token_agreement) == (0, 0.5)
    with pytest.raises(AgreementRefused, match="equal on 0 of 2"):
        check(shorter, "none", "v1-ct2", "v1")
    with pytest.raises(AgreementRefused, match="below the floor"):
        check(shorter, "int8", "v1-ct2-int8", "v1")

    hot = GenerationOptions(max_new_tokens=16, temperature=1.5)
    sampled = compare(expected, [generated_ids(converted, t, hot) for t in texts], 16)
    assert sampled.equal < 2
    with pytest.raises(AgreementRefused, match="disagrees with v1"):
        check(sampled, "none", "v1-ct2", "v1")


def test_prepare_kept_the_agreement_figures(prepared_models: Path) -> None:
    def figures(version: str) -> dict[str, float]:
        marker = prepared_models / "summarizer" / version / MARKER
        found: dict[str, float] = json.loads(marker.read_text())["figures"]
        return found

    exact = figures("v1-ct2")
    assert exact["heldout_prompts"] == len(read_heldout())
    assert exact["agreement_greedy_equal"] == exact["agreement_token_prefix"] == 1.0
    quantized = figures("v1-ct2-int8")
    assert NEXT_TOKEN_FLOOR <= quantized["agreement_next_token"] <= 1.0


def test_next_token_agreement_judges_each_token_on_the_reference_path(
    reference: CausalLmSummarizer, converted: Ctranslate2Summarizer, prepared_models: Path
) -> None:
    texts = TEXTS[:2]
    expected = greedy_ids(reference, texts, 16)
    # The float32 conversion predicts the reference's tokens; the int8 one most of them.
    assert next_token_agreement(converted, texts, expected) >= NEXT_TOKEN_FLOOR
    quantized = Ctranslate2Summarizer(
        str(prepared_models / "summarizer" / "v1-ct2-int8"), threads=1
    )
    assert next_token_agreement(quantized, texts, expected) >= NEXT_TOKEN_FLOOR
    # The same tokens backwards are not what the model predicts.
    backwards = next_token_agreement(converted, texts, [ids[::-1] for ids in expected])
    assert backwards < 0.5
    refused = compare(expected, expected, 16, next_token=backwards)
    with pytest.raises(AgreementRefused, match="next-token agreement"):
        check(refused, "int8", "v1-ct2-int8", "v1")
    check(compare(expected, expected, 16, next_token=1.0), "int8", "v1-ct2-int8", "v1")


@pytest.fixture
def without_ctranslate2(prepared_models: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The shipped summarizer in a process where ``import ctranslate2`` fails, as it does
    where the package is not installed."""
    blocked = tmp_path / "blocked" / "ctranslate2"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError(\"No module named 'ctranslate2'\")\n")
    prefix = "SWITCHYARD_SUMMARIZER_"
    env = {
        f"{prefix}PORT": "0",
        f"{prefix}METRICS_PORT": "0",
        f"{prefix}HOST": "127.0.0.1",
        f"{prefix}TORCH_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(blocked.parent), os.getenv("PYTHONPATH")])),
    }
    process = ServiceProcess("summarizer", env)
    try:
        process.wait_serving(SUMMARIZER)
        yield process
    finally:
        process.terminate()


def test_a_missing_ctranslate2_fails_only_its_version(without_ctranslate2: ServiceProcess) -> None:
    with grpc.insecure_channel(without_ctranslate2.address) as channel:
        stub = summarizer_pb2_grpc.SummarizerServiceStub(channel)
        listed = stub.ListModels(pb.ListModelsRequest(), timeout=30).models[0]
        status = {v.version: v.status for v in listed.versions}
        assert status == {
            "v1": models_pb2.MODEL_STATUS_READY,
            "v1-ct2": models_pb2.MODEL_STATUS_FAILED,
            "v1-ct2-int8": models_pb2.MODEL_STATUS_FAILED,
            "v1-lookup": models_pb2.MODEL_STATUS_READY,
        }
        options = pb.GenerationOptions(max_new_tokens=4)
        reply = stub.Summarize(pb.SummarizeRequest(text=EIFFEL, version="v1", options=options))
        assert reply.usage.generated_tokens == 4
        with pytest.raises(grpc.RpcError) as refused:
            stub.Summarize(pb.SummarizeRequest(text=EIFFEL, options=options), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert any(
        "ctranslate2 package cannot be imported" in json.dumps(record)
        for record in without_ctranslate2.logs
    )
