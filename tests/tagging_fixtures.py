"""Tiny ATIS and CoNLL-2003 mirrors in the upstream formats, and tiny tagger configs."""

import os
from pathlib import Path

import pytest

# (utterance, slot tags, intent), lower-cased and whitespace-tokenized like ATIS.
ATIS_TRAIN = [
    (
        "i want to fly from boston to denver",
        "O O O O O B-fromloc.city_name O B-toloc.city_name",
        "atis_flight",
    ),
    (
        "show me fares from dallas to san francisco",
        "O O O O B-fromloc.city_name O B-toloc.city_name I-toloc.city_name",
        "atis_airfare",
    ),
    (
        "what flights leave denver on monday",
        "O O O B-fromloc.city_name O B-depart_date.day_name",
        "atis_flight",
    ),
    (
        "i'd like a cheap flight to boston",
        "O O O B-cost_relative O O B-toloc.city_name",
        "atis_flight",
    ),
    ("list ground transportation in denver", "O O O O B-city_name", "atis_ground_service"),
]
ATIS_DEV = ATIS_TRAIN[:2]
# The test split has an intent and a slot type that train lacks, as the real one does.
ATIS_TEST = ATIS_TRAIN[2:] + [
    (
        "what day is the first class flight to dallas",
        "O O O O B-class_type I-class_type O O B-toloc.city_name",
        "atis_day_name",
    ),
]

# CoNLL-2003 lines (token POS chunk NER), IOB1: "B-" only starts a span that directly follows
# one of the same type ("Spain I-LOC", "France B-LOC").
CONLL_DOCUMENT = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
to TO I-VP O
boycott VB I-VP O
British JJ I-NP I-MISC
lamb NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

Talks NNS I-NP O
between IN I-PP O
Spain NNP I-NP I-LOC
France NNP I-NP B-LOC
and CC O O
the DT I-NP O
European NNP I-NP I-ORG
Commission NNP I-NP I-ORG
did VBD I-VP O
n't RB O O
end VB I-VP O
in IN I-PP O
Brussels NNP I-NP I-LOC
. . O O
"""
# Sentences of CONLL_DOCUMENT, tags in IOB2.
CONLL_SENTENCES = [
    (
        ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    ),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (
        [
            "Talks",
            "between",
            "Spain",
            "France",
            "and",
            "the",
            "European",
            "Commission",
            "did",
            "n't",
            "end",
            "in",
            "Brussels",
            ".",
        ],
        ["O", "O", "B-LOC", "B-LOC", "O", "O", "B-ORG", "I-ORG", "O", "O", "O", "O", "B-LOC", "O"],
    ),
]
CONLL_COPIES = {"eng.train": 3, "eng.testa": 1, "eng.testb": 2}

TINY_TAGGER = {
    "vocabulary_size": 60,
    "max_word_length": 8,
    "embedding_dim": 6,
    "embedding_init": "random",
    "character_embedding_dim": 4,
    "character_units": 5,
    "units": 4,
    "num_layers": 1,
    "epochs": 1,
    "batch_size": 4,
    "bucket_step": 8,
    "sequence_length": 32,
    "unlabeled_documents": 0,
}


def write_atis_mirror(directory: Path, copies: int = 2) -> Path:
    """atis/{train,dev,test}/{seq.in,seq.out,label} as in JointBERT's data/atis."""
    for split, rows in (("train", ATIS_TRAIN * copies), ("dev", ATIS_DEV), ("test", ATIS_TEST)):
        folder = directory / "atis" / split
        folder.mkdir(parents=True, exist_ok=True)
        for filename, column in (("seq.in", 0), ("seq.out", 1), ("label", 2)):
            (folder / filename).write_text("".join(row[column] + "\n" for row in rows))
    return directory / "atis"


def write_conll_mirror(directory: Path) -> Path:
    """conll2003/eng.{train,testa,testb}: CONLL_DOCUMENT repeated CONLL_COPIES times."""
    folder = directory / "conll2003"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, copies in CONLL_COPIES.items():
        (folder / filename).write_text((CONLL_DOCUMENT + "\n") * copies)
    return folder


@pytest.fixture
def tagging_mirror(tmp_path, monkeypatch):
    """Points the pipelines at tiny ATIS and CoNLL-2003 mirrors and a private TFDS data dir."""
    write_atis_mirror(tmp_path / "mirror")
    write_conll_mirror(tmp_path / "mirror")
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def real_tagging_mirror() -> Path | None:
    mirror = os.environ.get("ZOO_DATA_MIRROR")
    if not mirror:
        return None
    mirror = Path(mirror)
    return mirror if (mirror / "atis").exists() and (mirror / "conll2003").exists() else None


requires_tagging_mirror = pytest.mark.skipif(
    real_tagging_mirror() is None,
    reason="ZOO_DATA_MIRROR does not point at a mirror with atis/ and conll2003/",
)
