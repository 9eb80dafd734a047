"""The model registry file and its selection of versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.runtime.registry import VersionSpec, load_registry
from services.runtime.settings import DEFAULT_REGISTRY, ClassifierSettings


def test_the_shipped_registry_hosts_sentiment_v1_v2_and_v1_int8() -> None:
    spec = load_registry(DEFAULT_REGISTRY, "classifier")
    assert spec.default_model == "sentiment"
    assert spec.models["sentiment"].default_version == "v1"
    names = [(v.model, v.version) for v in spec.version_specs()]
    assert names == [("sentiment", "v1"), ("sentiment", "v2"), ("sentiment", "v1-int8")]
    int8 = spec.models["sentiment"].versions["v1-int8"]
    assert (int8.runtime, int8.quantization, int8.reference) == ("onnxruntime", "int8", "v1")


def test_only_keeps_the_listed_versions_and_moves_the_default() -> None:
    spec = load_registry(DEFAULT_REGISTRY, "classifier").only(["sentiment:v2"])
    assert spec.models["sentiment"].default_version == "v2"
    assert [v.version for v in spec.version_specs()] == ["v2"]
    with pytest.raises(ValueError, match="sentiment:v7"):
        load_registry(DEFAULT_REGISTRY, "classifier").only(["sentiment:v7"])
    for malformed in ("v1", "sentiment:", "sentiment:v1:x"):
        with pytest.raises(ValueError, match=f"model:version .*: {malformed}$"):
            load_registry(DEFAULT_REGISTRY, "classifier").only([malformed])


def test_weights_resolve_against_the_models_dir_or_name_a_hub_id(tmp_path: Path) -> None:
    local = VersionSpec(weights="sentiment/v1")
    assert local.weights_location(tmp_path) == str(tmp_path / "sentiment" / "v1")
    hub = VersionSpec(weights="hub:distilbert/distilbert-base-uncased-finetuned-sst-2-english")
    assert (
        hub.weights_location(tmp_path)
        == "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    )


def test_a_registry_with_a_missing_default_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(
        '[classifier]\ndefault_model = "sentiment"\n'
        '[classifier.models.sentiment]\ndefault_version = "v3"\n'
        '[classifier.models.sentiment.versions.v1]\nweights = "x"\n'
    )
    with pytest.raises(ValidationError, match="v3"):
        load_registry(path, "classifier")


def test_settings_read_the_environment_with_the_service_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_CLASSIFIER_PORT", "6000")
    monkeypatch.setenv("SWITCHYARD_CLASSIFIER_ONLY_VERSIONS", "sentiment:v1, sentiment:v2")
    settings = ClassifierSettings()
    assert settings.port == 6000
    assert settings.only_versions == ["sentiment:v1", "sentiment:v2"]
    assert ClassifierSettings(port=7000).port == 7000


def test_a_registry_naming_an_unknown_runtime_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(
        '[classifier]\ndefault_model = "sentiment"\n'
        '[classifier.models.sentiment]\ndefault_version = "v1"\n'
        '[classifier.models.sentiment.versions.v1]\nweights = "x"\nruntime = "tensorrt"\n'
    )
    with pytest.raises(ValidationError, match="runtime"):
        load_registry(path, "classifier")
    spec = VersionSpec(weights="x", runtime="onnxruntime", quantization="int8", reference="v1")
    assert (spec.runtime, spec.quantization, spec.reference) == ("onnxruntime", "int8", "v1")
    assert VersionSpec(weights="x").runtime == "transformers"


def test_prompt_lookup_is_refused_on_a_runtime_that_cannot_check_drafts() -> None:
    with pytest.raises(ValidationError, match="prompt_lookup_tokens needs runtime"):
        VersionSpec(weights="x", runtime="ctranslate2", prompt_lookup_tokens=10)
    with pytest.raises(ValidationError, match="prompt_lookup_tokens"):
        VersionSpec(weights="x", prompt_lookup_tokens=-1)
    assert VersionSpec(weights="x", prompt_lookup_tokens=10).prompt_lookup_tokens == 10
    assert VersionSpec(weights="x").prompt_lookup_tokens == 0
