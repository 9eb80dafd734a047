"""What a model is to the runtime: a predictor (a batch of inputs in, one output for each
out; no gRPC), the loader that builds one from a version's registry entry, and loading
one warm.

The repository, which hosts the versions, and the model worker, which runs one version
in a process of its own, both build on this module and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from services.runtime.registry import VersionSpec

In = TypeVar("In")
Out = TypeVar("Out")
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)


class Predictor(Protocol[In_contra, Out_co]):
    """A loaded model: maps a batch of inputs to one output each. No gRPC here."""

    def predict_batch(self, items: Sequence[In_contra]) -> Sequence[Out_co]: ...

    def warm_up(self) -> None: ...


Loader = Callable[[VersionSpec, str], Predictor[In, Out]]
"""Builds a predictor from a version's spec and its weights location (folder or hub id)."""


def load_and_warm(loader: Loader[In, Out], spec: VersionSpec, location: str) -> Predictor[In, Out]:
    """Load a version's model and run it once, so its first real call is not the slow one."""
    predictor = loader(spec, location)
    predictor.warm_up()
    return predictor
