"""ATIS and CoNLL-2003 pipelines: parsing the upstream formats, IOB1 -> IOB2, split sizes."""

import pytest
import tensorflow as tf

from pipelines import mirror
from pipelines.atis import Atis, load_atis, read_atis_files
from pipelines.conll2003 import Conll2003, iob1_to_iob2, load_conll2003, read_conll_file
from pipelines.transforms import pack_documents
from tests.tagging_fixtures import (  # noqa: F401  (tagging_mirror is a fixture)
    ATIS_TEST,
    ATIS_TRAIN,
    CONLL_COPIES,
    CONLL_SENTENCES,
    requires_tagging_mirror,
    tagging_mirror,
    write_conll_mirror,
)
from zoo.models.sequence_tagger.sequence_tagger_preprocessor import tokenize_sentences


@pytest.mark.parametrize(
    "iob1, iob2",
    [
        (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),
        (["O", "I-LOC", "B-LOC", "I-LOC"], ["O", "B-LOC", "B-LOC", "I-LOC"]),
        (["I-ORG", "I-MISC", "I-MISC"], ["B-ORG", "B-MISC", "I-MISC"]),
        (["B-PER", "I-PER"], ["B-PER", "I-PER"]),
        ([], []),
    ],
)
def test_iob1_to_iob2_puts_b_at_every_span_start(iob1, iob2):
    assert iob1_to_iob2(iob1) == iob2


def test_conll_reader_skips_docstart_and_blank_lines_and_converts_to_iob2(tmp_path):
    path = write_conll_mirror(tmp_path) / "eng.train"
    sentences = read_conll_file(path)
    assert len(sentences) == len(CONLL_SENTENCES) * CONLL_COPIES["eng.train"]
    for sentence, (tokens, tags) in zip(sentences, CONLL_SENTENCES):
        assert sentence == {"text": " ".join(tokens), "tokens": tokens, "tags": tags, "document": 0}
    # Every -DOCSTART- begins the next document (the file holds the document 3 times).
    assert [sentence["document"] for sentence in sentences] == [0] * 3 + [1] * 3 + [2] * 3


def test_pack_documents_joins_consecutive_sentences_of_a_document_up_to_the_limit():
    # Sentences of 9, 2 and 14 tokens, in two documents.
    rows = [(tokens, tags, document) for document in (0, 1) for tokens, tags in CONLL_SENTENCES]
    examples = tf.data.Dataset.from_tensor_slices(
        {
            "tokens": tf.ragged.constant([tokens for tokens, _, _ in rows]),
            "tags": tf.ragged.constant([tags for _, tags, _ in rows]),
            "document": [document for _, _, document in rows],
        }
    )
    packs = list(pack_documents(examples, max_tokens=12).as_numpy_iterator())
    # 9 + 2 fit in 12 tokens; the 14-token sentence is alone; a document never spills over.
    assert [pack["sentence_lengths"].tolist() for pack in packs] == [[9, 2], [14], [9, 2], [14]]
    first, second = CONLL_SENTENCES[:2]
    assert [t.decode() for t in packs[0]["tokens"]] == first[0] + second[0]
    assert [t.decode() for t in packs[0]["tags"]] == first[1] + second[1]
    packs = list(pack_documents(examples, max_tokens=100).as_numpy_iterator())
    assert [pack["sentence_lengths"].tolist() for pack in packs] == [[9, 2, 14]] * 2


def test_conll_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text("EU NNP I-ORG\n")
    with pytest.raises(ValueError, match=r"eng.train:1: expected 4 columns"):
        read_conll_file(path)


def test_atis_reader_checks_tokens_and_tags_align(tmp_path):
    (tmp_path / "seq.in").write_text("flights to boston\n")
    (tmp_path / "seq.out").write_text("O O\n")
    (tmp_path / "label").write_text("atis_flight\n")
    with pytest.raises(ValueError, match=r"seq.out:1: 2 tags for 3 tokens"):
        read_atis_files(tmp_path / "seq.in", tmp_path / "seq.out", tmp_path / "label")
    (tmp_path / "label").write_text("atis_flight\natis_airfare\n")
    with pytest.raises(ValueError, match="different numbers of lines"):
        read_atis_files(tmp_path / "seq.in", tmp_path / "seq.out", tmp_path / "label")


@pytest.mark.usefixtures("tagging_mirror")
def test_builders_read_the_upstream_layouts():
    sizes = {n: s.num_examples for n, s in mirror.prepare(Atis).info.splits.items()}
    assert sizes == {"train": 2 * len(ATIS_TRAIN), "dev": 2, "test": len(ATIS_TEST)}
    example = next(load_atis("test").skip(len(ATIS_TEST) - 1).as_numpy_iterator())
    text, tags, intent = ATIS_TEST[-1]
    assert example["text"].decode() == text
    assert [t.decode() for t in example["tokens"]] == text.split()
    assert [t.decode() for t in example["tags"]] == tags.split()
    assert example["intent"].decode() == intent

    sizes = {n: s.num_examples for n, s in mirror.prepare(Conll2003).info.splits.items()}
    assert sizes == {
        split: len(CONLL_SENTENCES) * CONLL_COPIES[filename]
        for split, filename in (("train", "eng.train"), ("dev", "eng.testa"), ("test", "eng.testb"))
    }
    examples = list(load_conll2003("dev").as_numpy_iterator())
    assert [[t.decode() for t in e["tags"]] for e in examples] == [t for _, t in CONLL_SENTENCES]


def test_missing_conll_files_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no public download.*manual folder"):
        mirror.prepare(Conll2003)


@pytest.mark.real_data
@requires_tagging_mirror
def test_real_split_sizes_and_tokenizer_agreement():
    sizes = {n: s.num_examples for n, s in mirror.prepare(Atis).info.splits.items()}
    assert sizes == {"train": 4478, "dev": 500, "test": 893}
    sizes = {n: s.num_examples for n, s in mirror.prepare(Conll2003).info.splits.items()}
    assert sizes == {"train": 14041, "dev": 3250, "test": 3453}

    # The in-graph tokenizer splits a dataset's space-joined sentence back into its tokens.
    for load, split_clitics, most_disagree in ((load_atis, False, 0), (load_conll2003, True, 4)):
        disagree = 0
        for batch in load("test").ragged_batch(512):
            tokens = tokenize_sentences(batch["text"], split_clitics).to_list()
            disagree += sum(a != b for a, b in zip(tokens, batch["tokens"].to_list()))
        assert disagree <= most_disagree, (load.__name__, disagree)
    first = next(iter(load_conll2003("train").take(1)))
    assert first["tags"].numpy().tolist() == [
        b"B-ORG",
        b"O",
        b"B-MISC",
        b"O",
        b"O",
        b"O",
        b"B-MISC",
        b"O",
        b"O",
    ]
    assert tf.size(first["tokens"]) == 9
