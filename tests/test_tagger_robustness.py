"""Taggers on text written otherwise: re-cased copies, names never seen in training."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import zoo
from pipelines.atis import read_atis_files
from pipelines.conll2003 import read_conll_file
from pipelines.name_substitution import (
    ATIS_NAMES,
    CONLL_NAMES,
    GENERIC_WORDS,
    SPLITS,
    NameSubstitution,
    dataset_from_examples,
    examples_from_dataset,
    substitute_spans,
    tag_spans,
    words_of,
)
from pipelines.transforms import recased, with_casing_copies
from tests.tagging_fixtures import (
    ATIS_TRAIN,
    TINY_TAGGER,
    real_tagging_mirror,
    requires_tagging_mirror,
)
from zoo.config import resolve_config
from zoo.errors import ConfigError
from zoo.models.sequence_tagger import SequenceTaggerConfig, SequenceTaggerFamily
from zoo.readme import variants

# A tiny pool per split: each city has a name of one, two and three words.
TINY_NAMES = NameSubstitution(
    pools={
        "city_name": {
            "test": ("oslo", "santa rosa", "dar es salaam"),
            "dev": ("lima", "el paso", "ho chi minh"),
            "train": ("riga", "des moines", "addis ababa"),
        }
    },
    seed=3,
)


def atis_examples(rows=ATIS_TRAIN) -> list[dict]:
    return [
        {"text": text, "tokens": text.split(), "tags": tags.split(), "intent": intent}
        for text, tags, intent in rows
    ]


def test_tag_spans_read_iob2_as_seqeval_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-toloc.city_name"]
    assert tag_spans(tags) == [
        (0, 2, "PER"),
        (3, 5, "LOC"),
        (5, 6, "LOC"),
        (6, 7, "ORG"),
        (7, 8, "toloc.city_name"),
    ]
    assert tag_spans([]) == [] and tag_spans(["O"]) == []


def test_a_longer_replacement_moves_the_tags_of_every_later_token():
    tokens = ["fly", "from", "dallas", "to", "san", "francisco", "on", "monday"]
    tags = [
        "O",
        "O",
        "B-fromloc.city_name",
        "O",
        "B-toloc.city_name",
        "I-toloc.city_name",
        "O",
        "B-depart_date.day_name",
    ]
    names = {"dallas": ["dar", "es", "salaam"], "san francisco": ["oslo"]}

    def replace(span_type, value):
        return names.get(" ".join(value)) if span_type.endswith("city_name") else None

    new_tokens, new_tags = substitute_spans(tokens, tags, replace)
    assert new_tokens == ["fly", "from", "dar", "es", "salaam", "to", "oslo", "on", "monday"]
    assert new_tags == [
        "O",
        "O",
        "B-fromloc.city_name",
        "I-fromloc.city_name",
        "I-fromloc.city_name",
        "O",
        "B-toloc.city_name",
        "O",
        "B-depart_date.day_name",
    ]
    # Spans that are not replaced keep their tokens, wherever they moved.
    for start, end, span_type in tag_spans(new_tags):
        if span_type == "depart_date.day_name":
            assert new_tokens[start:end] == ["monday"]


def test_substituted_split_replaces_every_name_consistently_and_records_the_mapping():
    examples = atis_examples()
    substituted, mapping = TINY_NAMES.substituted(examples, "test")
    assert set(mapping) == {"city_name"}
    assert sorted(mapping["city_name"]) == ["boston", "dallas", "denver", "san francisco"]
    # Four values, three names: every name is used before one repeats; multi-word values
    # get names of the closest length while unused ones last.
    assert set(mapping["city_name"].values()) == set(TINY_NAMES.pools["city_name"]["test"])
    assert mapping == TINY_NAMES.substituted(examples, "test")[1]  # seeded
    assert TINY_NAMES.substituted(examples, "dev")[1] != mapping  # another pool
    for original, new in zip(examples, substituted):
        assert len(new["tokens"]) == len(new["tags"]) and new["text"] == " ".join(new["tokens"])
        assert new["intent"] == original["intent"]
        old_spans, new_spans = tag_spans(original["tags"]), tag_spans(new["tags"])
        assert [span[2] for span in old_spans] == [span[2] for span in new_spans]
        for (start, end, kind), (new_start, new_end, _) in zip(old_spans, new_spans):
            value = " ".join(original["tokens"][start:end])
            expected = mapping["city_name"][value] if "city_name" in kind else value
            assert " ".join(new["tokens"][new_start:new_end]) == expected
        # The words outside names are those of the original sentence, in order.
        outside = [t for t, tag in zip(new["tokens"], new["tags"]) if "city_name" not in tag]
        assert outside == [
            t for t, tag in zip(original["tokens"], original["tags"]) if "city_name" not in tag
        ]


def test_possessives_stay_on_the_substituted_name():
    examples = atis_examples([("boston's airport", "B-city_name O", "atis_airport")])
    substituted, _ = TINY_NAMES.substituted(examples, "test")
    assert substituted[0]["tokens"][-2].endswith("'s") and substituted[0]["tokens"][-1] == "airport"


def test_training_copies_draw_names_from_the_training_pool_only():
    examples = atis_examples()
    copies = TINY_NAMES.augmented(examples, fraction=1.0, seed=0)
    assert len(copies) == len(examples)  # Every sentence holds a city.
    train_words = words_of(
        [{"tokens": name.split()} for name in TINY_NAMES.names("train")["city_name"]]
    )
    for copy in copies:
        for start, end, span_type in tag_spans(copy["tags"]):
            if span_type.endswith("city_name"):
                assert {w for w in copy["tokens"][start:end]} <= train_words
    assert TINY_NAMES.augmented(examples, fraction=0.0, seed=0) == []
    assert copies == TINY_NAMES.augmented(examples, fraction=1.0, seed=0)


@pytest.mark.parametrize("substitution", [ATIS_NAMES, CONLL_NAMES], ids=["atis", "conll"])
def test_name_pools_for_test_dev_and_training_share_no_name_word(substitution):
    for kind, pools in substitution.pools.items():
        assert set(pools) == set(SPLITS)
        words = {
            split: {w.lower() for name in names for w in name.split()} - GENERIC_WORDS
            for split, names in pools.items()
        }
        for index, split in enumerate(SPLITS):
            for other in SPLITS[index + 1 :]:
                assert not words[split] & words[other], (kind, split, other)


@requires_tagging_mirror
def test_no_substituted_name_has_a_word_of_the_training_split():
    mirror = real_tagging_mirror()
    atis = [
        read_atis_files(
            *(mirror / "atis" / split / name for name in ("seq.in", "seq.out", "label"))
        )
        for split in ("train", "dev", "test")
    ]
    conll_train = read_conll_file(mirror / "conll2003" / "eng.train")
    for substitution, seen in (
        (ATIS_NAMES, words_of(atis[0] + atis[1] + atis[2])),
        (CONLL_NAMES, words_of(conll_train)),
    ):
        for kind, pools in substitution.pools.items():
            for names in pools.values():
                clashes = [
                    name
                    for name in names
                    if {w.lower() for w in name.split()} - GENERIC_WORDS & seen
                ]
                assert not clashes, (kind, clashes)
    # Every city, airline and airport of ATIS's test split gets a name of its own.
    _, mapping = ATIS_NAMES.substituted(atis[2], "test")
    assert set(mapping) == {"city_name", "airline_name", "airport_name"}
    for kind, names in mapping.items():
        assert len(set(names.values())) == len(names), kind


def test_recased_copies_keep_the_tags():
    example = {
        "text": tf.constant("Peter lives in Brüssel"),
        "tokens": tf.constant(["Peter", "lives", "in", "Brüssel"]),
        "tags": tf.constant(["B-PER", "O", "O", "B-LOC"]),
        "document": tf.constant(3),
    }
    lower, upper = recased(example, "lower"), recased(example, "upper")
    assert lower["tokens"].numpy().tolist() == [b"peter", b"lives", b"in", "brüssel".encode()]
    assert upper["text"].numpy().decode() == "PETER LIVES IN BRÜSSEL"
    for copy in (lower, upper):
        assert copy["tags"].numpy().tolist() == example["tags"].numpy().tolist()
        assert copy["document"] == 3
    with pytest.raises(ValueError, match="case must be one of lower, upper"):
        recased(example, "title")


def test_casing_copies_add_a_lower_and_an_upper_cased_copy_of_a_fraction_of_sentences():
    sentences = [["Peter", "Blackburn"], ["EU", "rejects"], ["in", "Spain"], ["Oslo"]]
    examples = tf.data.Dataset.from_tensor_slices(
        {"tokens": tf.ragged.constant(sentences), "tags": tf.ragged.constant(sentences)}
    )

    def texts(fraction, seed=1):
        dataset = with_casing_copies(examples, fraction, seed)
        return [
            (
                [t.decode() for t in example["tokens"]],
                [t.decode() for t in example["tags"]],
            )
            for example in dataset.as_numpy_iterator()
        ]

    assert texts(0.0) == [(s, s) for s in sentences]
    everything = texts(1.0)
    assert everything[:3] == [
        (sentences[0], sentences[0]),
        (["peter", "blackburn"], sentences[0]),  # The tags stay as they were.
        (["PETER", "BLACKBURN"], sentences[0]),
    ]
    assert len(everything) == 3 * len(sentences)
    half = texts(0.5)
    assert len(sentences) < len(half) < 3 * len(sentences)
    assert half == texts(0.5)  # The same copies every epoch.
    assert [t for t, _ in half if t in sentences] == sentences  # Originals in order.


def test_robustness_options_are_validated():
    for key in ("casing_augmentation", "value_substitution"):
        assert getattr(resolve_config(SequenceTaggerConfig, {key: "1.0"}), key) == 1.0
        with pytest.raises(ConfigError, match=f"'{key}' must be a fraction in \\[0, 1\\]"):
            resolve_config(SequenceTaggerConfig, {key: "1.5"})
        with pytest.raises(ConfigError, match=f"'{key}' must be a fraction"):
            resolve_config(SequenceTaggerConfig, {key: "-0.1"})
    with pytest.raises(ConfigError, match="'name_word_dropout' must be in \\[0, 1\\)"):
        resolve_config(SequenceTaggerConfig, {"name_word_dropout": "1.0"})
    with pytest.raises(ConfigError, match="'value_substitution' adds single sentences"):
        resolve_config(SequenceTaggerConfig, {"value_substitution": "0.5", "context_tokens": 64})
    defaults = resolve_config(SequenceTaggerConfig, {})
    assert (
        defaults.casing_augmentation,
        defaults.value_substitution,
        defaults.name_word_dropout,
    ) == (0.0, 0.0, 0.0)


def tiny_family(name_substitution=TINY_NAMES, rows=ATIS_TRAIN):
    examples = atis_examples(rows)

    def load_split(split):
        return tf.data.Dataset.from_tensor_slices(
            {
                "text": [example["text"] for example in examples],
                "tokens": tf.ragged.constant([example["tokens"] for example in examples]),
                "tags": tf.ragged.constant([example["tags"] for example in examples]),
                "intent": [example["intent"] for example in examples],
            }
        )

    return SequenceTaggerFamily(
        load_split=load_split, with_intent=True, name_substitution=name_substitution
    )


def test_variants_of_a_split_are_built_from_its_tokens_and_tags():
    family = tiny_family()
    assert family.variants() == ["lowercased", "uppercased", "unseen_names"]
    assert tiny_family(name_substitution=None).variants() == ["lowercased", "uppercased"]
    plain = examples_from_dataset(family.load_split("test"))
    upper, record = family._split_examples("test", "uppercased")
    assert record is None
    for original, copy in zip(plain, examples_from_dataset(upper)):
        assert copy["tokens"] == [t.upper() for t in original["tokens"]]
        assert copy["tags"] == original["tags"] and copy["intent"] == original["intent"]
    unseen, record = family._split_examples("test", "unseen_names")
    assert record["seed"] == 3 and record["num_substituted"] == 4
    assert examples_from_dataset(unseen) == TINY_NAMES.substituted(plain, "test")[0]
    # A split of another name (a development split) takes the development pool.
    assert family._split_examples("validation", "unseen_names")[1]["mapping"] == (
        TINY_NAMES.mapping(plain, "dev")
    )
    assert examples_from_dataset(dataset_from_examples(plain, unseen.element_spec)) == plain
    with pytest.raises(ValueError, match="Unknown variant"):
        family._split_examples("test", "reversed")


def test_evaluation_scores_every_variant_of_the_test_and_dev_splits(tmp_path):
    family = tiny_family()
    config = resolve_config(
        SequenceTaggerConfig,
        {**TINY_TAGGER, "embedding_init": "random", "lowercase_characters": "true"},
    )
    model = family.prepare_model(config, tmp_path)
    results = family.evaluate(model, config, "test")
    for scores in (results, results["dev"]):
        assert set(scores["variants"]) == {"lowercased", "uppercased", "unseen_names"}
        for variant in scores["variants"].values():
            assert 0.0 <= variant["f1"] <= 1.0 and variant["num_examples"] == len(ATIS_TRAIN)
            assert "intent_accuracy" in variant and "confusions" not in variant
    assert results["variants"]["unseen_names"]["mapping"] == TINY_NAMES.mapping(
        atis_examples(), "test"
    )
    assert results["dev"]["variants"]["unseen_names"]["mapping"] == TINY_NAMES.mapping(
        atis_examples(), "dev"
    )
    # Words and (as the slots recipe has it) characters are read lower-cased: upper-cased
    # text gets the tags that lower-cased text gets.
    assert results["variants"]["uppercased"]["f1"] == results["variants"]["lowercased"]["f1"]


def training_sentences(family, model, config):
    train, _ = family.training_data(model, config)
    words = ["<padding>", "<oov>", *model.preprocessor.get_vocabulary()]
    return [
        [words[index] for index in row if index]
        for features, _ in train.as_numpy_iterator()
        for row in features["token_ids"]
    ]


def test_training_adds_recased_and_substituted_copies_and_drops_name_words(tmp_path):
    family = tiny_family()
    config = resolve_config(
        SequenceTaggerConfig,
        {**TINY_TAGGER, "embedding_init": "random", "word_dropout": "0.0"},
    )
    model = family.prepare_model(config, tmp_path)
    vocabulary = model.preprocessor.get_vocabulary()
    assert not {"riga", "des", "moines", "addis", "ababa"} & set(vocabulary)
    sentences = len(ATIS_TRAIN)
    assert len(training_sentences(family, model, config)) == sentences

    # Re-cased copies read the same word ids (the characters differ).
    recased_config = dataclasses.replace(config, casing_augmentation=1.0)
    assert len(training_sentences(family, model, recased_config)) == 3 * sentences

    # Every sentence holds a city: one copy each, its cities out of the vocabulary.
    substituted = training_sentences(
        family, model, dataclasses.replace(config, value_substitution=1.0)
    )
    assert len(substituted) == 2 * sentences
    assert sum(sentence.count("<oov>") for sentence in substituted) >= sentences

    # Name word dropout hits the words of cities only.
    dropped = training_sentences(
        family, model, dataclasses.replace(config, name_word_dropout=0.999)
    )
    kept = [w for sentence in dropped for w in sentence if w != "<oov>"]
    cities = {"boston", "denver", "dallas", "san", "francisco"}
    assert not cities & set(kept) and len(kept) == sum(
        len(text.split()) for text, _, _ in ATIS_TRAIN
    ) - sum(tags.count("city_name") for _, tags, _ in ATIS_TRAIN)

    without_names = tiny_family(name_substitution=None)
    for key in ("value_substitution", "name_word_dropout"):
        with pytest.raises(ConfigError, match="This entry substitutes no names"):
            without_names.training_data(model, dataclasses.replace(config, **{key: 0.5}))


def test_the_served_slots_model_lower_cases_its_input_itself():
    model = zoo.build("slots", **TINY_TAGGER)
    model.preprocessor.set_vocabulary(["flights", "to", "boston", "i'd", "like"])
    model.preprocessor.set_characters(list("abdefghiklnorstu'"))
    texts = [
        "i'd like flights to boston",
        "I'd like Flights to Boston",
        "I'D LIKE FLIGHTS TO BOSTON",
    ]
    features = model.preprocessor(tf.constant(texts))
    for name, value in features.items():
        for row in value.numpy()[1:]:
            np.testing.assert_array_equal(row, value.numpy()[0], err_msg=name)
    outputs = model.predict(texts, verbose=0)
    for row in (1, 2):
        np.testing.assert_array_equal(outputs["tag_ids"][row], outputs["tag_ids"][0])
        np.testing.assert_allclose(
            outputs["intent_logits"][row], outputs["intent_logits"][0], atol=1e-6
        )


def test_readme_shows_the_robust_numbers_beside_the_official_one():
    metrics = {
        "metric": "f1",
        "variants": {
            "lowercased": {"f1": 0.5},
            "uppercased": {"f1": 0.25},
            "unseen_names": {"f1": 0.875},
        },
    }
    assert variants(metrics, 100) == "; lower-cased 50.00, upper-cased 25.00, unseen names 87.50"
    assert variants({"metric": "f1"}, 100) == ""
