"""Print the requirements of the gateway image: the project's dependencies less the ones
only the model services use (torch and the model libraries).

    python gateway_requirements.py pyproject.toml > gateway-requirements.txt

The gateway never imports these (tests/test_deploy.py checks it by importing the gateway and
the `switchyard` command with them blocked), so its image is a fraction of the size of the
model services' image and carries no torch.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

MODEL_ONLY = frozenset(
    {
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "gguf",
        "accelerate",
        "onnxruntime",
        "onnx",
        "onnxscript",
        "ctranslate2",
    }
)
"""Distribution names (as pyproject.toml lists them) the gateway image leaves out. (numpy
stays: the guardrails' and experiments' statistics run on scipy, which needs it.)"""


def distribution_name(requirement: str) -> str:
    """The distribution a PEP 508 requirement names, normalized (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def project_dependencies(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as f:
        dependencies: list[str] = tomllib.load(f)["project"]["dependencies"]
    return dependencies


def gateway_requirements(pyproject: Path) -> list[str]:
    return [r for r in project_dependencies(pyproject) if distribution_name(r) not in MODEL_ONLY]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for requirement in gateway_requirements(Path(argv[0])):
        print(requirement)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
