"""Stop sequences: text that ends a generation where it appears.

Pieces arrive a word or so at a time and a stop sequence may straddle two of them, so
the scanner holds back the end of the text that could still grow into a stop sequence,
and lets it go once it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.runtime.errors import InvalidInput

MAX_STOPS = 4
MAX_STOP_CHARS = 64


def check_stops(stops: Sequence[str]) -> tuple[str, ...]:
    """The stop sequences of a request, or INVALID_ARGUMENT naming the broken limit."""
    if len(stops) > MAX_STOPS:
        raise InvalidInput(f"stop has {len(stops)} sequences; the limit is {MAX_STOPS}")
    for i, stop in enumerate(stops):
        if not stop:
            raise InvalidInput(f"stop[{i}] is empty; a stop sequence needs a character")
        if len(stop) > MAX_STOP_CHARS:
            raise InvalidInput(
                f"stop[{i}] has {len(stop)} characters; the limit is {MAX_STOP_CHARS}"
            )
    return tuple(stops)


class StopScanner:
    """Feeds pieces through, minus any stop sequence and everything after it."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that may go out now; ``stopped`` turns true at a stop sequence, after
        which nothing more goes out."""
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._held + piece
        found = [i for i in (text.find(stop) for stop in self._stops) if i >= 0]
        if found:
            self.stopped = True
            self._held = ""
            return text[: min(found)]
        keep = self._longest_open_prefix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, once the generation ended without completing a stop."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_open_prefix(self, text: str) -> int:
        """The length of the longest end of ``text`` that begins some stop sequence."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
