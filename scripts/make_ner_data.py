"""Write the starter NER sets: training sentences and a test set of other names and shapes.

Sentences are built from templates and name lists; the test set shares no template and
no name with the training set, so its F1 measures generalisation. Entities are stored as
code-point offsets into the text. Seeded: the files are stable.
Run ``python scripts/make_ner_data.py`` to rewrite them.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "services" / "ner" / "data"

TRAIN_NAMES = {
    "PER": [
        "John Smith",
        "Mary Johnson",
        "Ahmed Hassan",
        "Li Wei",
        "Carlos Mendez",
        "Sofia Rossi",
        "Peter Brown",
        "Anna Schmidt",
        "David Lee",
        "Fatima Khan",
        "James Wilson",
        "Maria Garcia",
        "Tom Baker",
        "Yuki Tanaka",
        "Olga Petrova",
        "Robert Miller",
        "Emma Davis",
        "Raj Patel",
        "Lucas Martin",
        "Grace Kim",
        "Michael",
        "Sarah",
        "Daniel",
        "Laura",
        "Kevin O'Brien",
        "Nina Novak",
    ],
    "ORG": [
        "Google",
        "Microsoft",
        "the United Nations",
        "Acme Corporation",
        "Siemens",
        "Toyota",
        "the World Bank",
        "Reuters",
        "Oxford University",
        "Northwind Traders",
        "Apple",
        "Amazon",
        "the BBC",
        "Nestle",
        "Red Cross",
        "Contoso Ltd",
        "IBM",
        "General Electric",
        "Harvard University",
        "Deutsche Bank",
    ],
    "LOC": [
        "Paris",
        "London",
        "Tokyo",
        "New York",
        "Berlin",
        "Cairo",
        "Sydney",
        "Madrid",
        "Rome",
        "Toronto",
        "Mumbai",
        "Beijing",
        "Chicago",
        "Brazil",
        "Germany",
        "Kenya",
        "California",
        "Texas",
        "the Alps",
        "Mexico City",
        "Vienna",
        "Seoul",
    ],
}
TEST_NAMES = {
    "PER": [
        "Ingrid Halvorsen",
        "Bartholomew Quince",
        "Amara Okafor",
        "Tobias Lindqvist",
        "Chiara Bellini",
        "Kwame Mensah",
        "Elena Vasquez",
        "Hiroshi Nakamura",
        "Priya Raman",
        "Mateo Herrera",
        "Zanele Dube",
        "Felix Wagner",
    ],
    "ORG": [
        "Globex",
        "Initech",
        "Vandelay Industries",
        "Stark Industries",
        "Umbrella Corp",
        "the Red Crescent",
        "Wayne Enterprises",
        "Samsung",
        "Unilever",
        "Stanford University",
    ],
    "LOC": [
        "Lisbon",
        "Nairobi",
        "Montreal",
        "Oslo",
        "Lima",
        "Hanoi",
        "Dublin",
        "Istanbul",
        "Santiago",
        "Helsinki",
        "Portugal",
        "Norway",
    ],
}

TRAIN_TEMPLATES = [
    "{PER} works for {ORG} in {LOC}.",
    "{PER} visited {LOC} last summer.",
    "{ORG} opened a new office in {LOC}.",
    "Yesterday {PER} met {PER} at the {ORG} headquarters.",
    "{PER} was born in {LOC}.",
    "The chief executive of {ORG}, {PER}, spoke in {LOC} on Monday.",
    "{LOC} is home to {ORG}.",
    "According to {PER}, {ORG} will hire more staff next year.",
    "{PER} moved from {LOC} to {LOC} in 2015.",
    "Shares of {ORG} rose after {PER} resigned.",
    "{PER} studied at {ORG} before moving to {LOC}.",
    "Officials in {LOC} praised {ORG} for its response.",
    "{PER} said the talks in {LOC} went well.",
    "{ORG} and {ORG} signed a deal on Tuesday.",
    "Police in {LOC} are looking for {PER}.",
    "{PER} will lead the {ORG} team.",
    "A report by {ORG} ranks {LOC} first.",
    "Heavy rain fell across {LOC} this week.",
    "My friend {PER} lives near {LOC}.",
    "{PER} thanked {PER} for the help.",
]
TEST_TEMPLATES = [
    "In {LOC}, {PER} founded {ORG} in 1999.",
    "{ORG} hired {PER} as its new director.",
    "Last week {PER} flew to {LOC} to meet investors.",
    "{PER} and {PER} travelled across {LOC}.",
    "A spokesperson for {ORG} said {PER} would not attend.",
    "Tourists from {LOC} crowd the streets of {LOC} every August.",
    "Before joining {ORG}, {PER} taught school in {LOC}.",
    "The mayor of {LOC} welcomed {PER} warmly.",
]
NO_ENTITY = [
    "The weather was nice today.",
    "We should meet again soon.",
    "Prices went up again.",
    "The meeting ended early.",
    "She bought a new bicycle.",
    "It rained all night.",
    "The report will be published next month.",
    "Nobody answered the phone.",
]


def render(template: str, names: dict[str, list[str]], rng: random.Random) -> dict[str, object]:
    text = ""
    entities: list[dict[str, object]] = []
    position = 0
    for match in re.finditer(r"\{(PER|ORG|LOC)\}", template):
        text += template[position : match.start()]
        label = match.group(1)
        name = rng.choice(names[label])
        if name.startswith("the ") and match.start() == 0:
            name = "The " + name[4:]
        surface = name[4:] if name.lower().startswith("the ") else name
        start = len(text) + (len(name) - len(surface))
        text += name
        entities.append({"start": start, "end": start + len(surface), "label": label})
        position = match.end()
    text += template[position:]
    return {"text": text, "entities": entities}


def build(
    templates: list[str],
    names: dict[str, list[str]],
    per_template: int,
    rng: random.Random,
    extra: list[str],
) -> list[dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for template in templates:
        made = 0
        for _ in range(per_template * 5):
            row = render(template, names, rng)
            if row["text"] not in rows:
                rows[str(row["text"])] = row
                made += 1
            if made == per_template:
                break
    items = list(rows.values()) + [{"text": t, "entities": []} for t in extra]
    rng.shuffle(items)
    return items


def main() -> None:
    rng = random.Random(20261122)
    train = build(TRAIN_TEMPLATES, TRAIN_NAMES, 40, rng, NO_ENTITY)
    test = build(TEST_TEMPLATES, TEST_NAMES, 20, rng, [])
    train_names = {n for names in TRAIN_NAMES.values() for n in names}
    test_names = {n for names in TEST_NAMES.values() for n in names}
    assert not train_names & test_names
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("ner_train.jsonl", train), ("ner_test.jsonl", test)):
        with (OUT / name).open("w") as f:
            for row in rows:
                for e in row["entities"]:  # type: ignore[attr-defined]
                    assert row["text"][e["start"] : e["end"]]  # type: ignore[index]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} sentences")


if __name__ == "__main__":
    main()
