"""Write the starter sentiment sets: a training set and a held-out set of other sentences.

The two sets share no template and no subject, so held-out accuracy measures what the
model learnt about sentiment, not the sentences it saw. Seeded: the files are stable.
Run ``python scripts/make_sentiment_data.py`` to rewrite them.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "services" / "classifier" / "data"

POS = [
    "great",
    "wonderful",
    "excellent",
    "delightful",
    "fantastic",
    "lovely",
    "superb",
    "brilliant",
    "charming",
    "pleasant",
    "enjoyable",
    "impressive",
    "amazing",
    "terrific",
]
NEG = [
    "terrible",
    "awful",
    "dreadful",
    "boring",
    "disappointing",
    "horrible",
    "poor",
    "dull",
    "mediocre",
    "frustrating",
    "unpleasant",
    "broken",
    "bland",
    "miserable",
]
POS_HELD = [
    "outstanding",
    "marvelous",
    "splendid",
    "magnificent",
    "stellar",
    "fabulous",
    "wonderful",
    "excellent",
    "great",
    "superb",
]
NEG_HELD = [
    "atrocious",
    "abysmal",
    "lousy",
    "tedious",
    "dismal",
    "shoddy",
    "terrible",
    "awful",
    "disappointing",
    "boring",
]

TRAIN_SUBJECTS = [
    "movie",
    "restaurant",
    "phone",
    "hotel",
    "book",
    "meal",
    "service",
    "game",
    "album",
    "car",
    "course",
    "show",
    "coffee",
    "app",
    "trip",
    "room",
]
HELD_SUBJECTS = [
    "concert",
    "laptop",
    "museum",
    "bakery",
    "flight",
    "novel",
    "headphones",
    "play",
    "pizza",
    "camera",
    "gym",
    "podcast",
]

# (template, label): {p} a positive word, {n} a negative word, {s} a subject.
TRAIN_TEMPLATES = [
    ("The {s} was {p}.", "positive"),
    ("The {s} was {n}.", "negative"),
    ("I love this {s}, it is {p}.", "positive"),
    ("I hate this {s}, it is {n}.", "negative"),
    ("What a {p} {s}!", "positive"),
    ("What a {n} {s}!", "negative"),
    ("This {s} is not {n} at all.", "positive"),
    ("This {s} is not {p} at all.", "negative"),
    ("The {s} wasn't {n}, it was actually {p}.", "positive"),
    ("The {s} wasn't {p}, it was actually {n}.", "negative"),
    ("I expected a {n} {s} but it turned out {p}.", "positive"),
    ("I expected a {p} {s} but it turned out {n}.", "negative"),
    ("I would definitely recommend this {s}.", "positive"),
    ("I would never recommend this {s}.", "negative"),
    ("Nothing about the {s} was {n}.", "positive"),
    ("Nothing about the {s} was {p}.", "negative"),
    ("Not bad at all, the {s} was {p}.", "positive"),
    ("Never again: the {s} was {n} and a waste of money.", "negative"),
    ("We really enjoyed the {s}.", "positive"),
    ("We regret choosing this {s}.", "negative"),
]
HELD_TEMPLATES = [
    ("Our {s} experience was {p}, we will come back.", "positive"),
    ("Avoid this {s}; it was {n}.", "negative"),
    ("Far from {n}, this {s} impressed everyone.", "positive"),
    ("Hardly {p}, the {s} left us cold.", "negative"),
    ("The {s} did not disappoint.", "positive"),
    ("The {s} did not live up to the hype.", "negative"),
    ("Absolutely {p}: the {s} exceeded my expectations.", "positive"),
    ("Sadly, the {s} was {n} from start to finish.", "negative"),
    ("It was not a {n} {s} in the least.", "positive"),
    ("It was not a {p} {s}, to be honest.", "negative"),
    ("I have rarely seen such a {p} {s}.", "positive"),
    ("I have rarely seen such a {n} {s}.", "negative"),
]


def render(
    templates: list[tuple[str, str]],
    subjects: list[str],
    pos: list[str],
    neg: list[str],
    per_template: int,
    rng: random.Random,
) -> list[dict[str, str]]:
    rows: dict[str, str] = {}
    for template, label in templates:
        made = 0
        attempts = 0
        while made < per_template and attempts < per_template * 20:
            attempts += 1
            text = template.format(s=rng.choice(subjects), p=rng.choice(pos), n=rng.choice(neg))
            text = re.sub(r"\b([Aa]) ([aeiou])", r"\1n \2", text)
            text = text[0].upper() + text[1:]
            if text not in rows:
                rows[text] = label
                made += 1
    items = [{"text": t, "label": lab} for t, lab in rows.items()]
    rng.shuffle(items)
    return items


def main() -> None:
    rng = random.Random(20261122)
    train = render(TRAIN_TEMPLATES, TRAIN_SUBJECTS, POS, NEG, 32, rng)
    held = render(HELD_TEMPLATES, HELD_SUBJECTS, POS_HELD, NEG_HELD, 20, rng)
    assert not {r["text"] for r in train} & {r["text"] for r in held}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("sentiment_train.jsonl", train), ("sentiment_heldout.jsonl", held)):
        with (OUT / name).open("w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"{name}: {len(rows)} sentences")


if __name__ == "__main__":
    main()
