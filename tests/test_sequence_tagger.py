"""The sequence tagger, its preprocessor and its config, on tiny hand-made vocabularies."""

import dataclasses
import inspect
import os
import tempfile
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import run_on_jax
from tests.tagging_fixtures import TINY_TAGGER
from zoo.config import resolve_config
from zoo.errors import ConfigError, InputError, UnknownEntryError
from zoo.layers import RecurrentBackbone
from zoo.layers.character_encoder import CharacterEncoder
from zoo.layers.recurrent_backbone import STACK_ARGUMENTS
from zoo.models.sequence_tagger import SequenceTaggerConfig
from zoo.models.sequence_tagger.sequence_tagger import SequenceTagger
from zoo.models.sequence_tagger.sequence_tagger_preprocessor import (
    CASING_CLASSES,
    SequenceTaggerPreprocessor,
    casing_ids,
)
from zoo.models.sequence_tagger.tag_schemes import iob2_tag_name, iob2_to_iobes, iobes_tag_names
from zoo.registry import get_entry

WORDS = ["to", "from", "boston", "denver", "flights", "the", "0"]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyzBD0.")
TAGS = ["O", "B-city", "I-city", "B-date"]
INTENTS = ["flight", "fare"]
SENTENCES = ["flights from Boston to Denver", "the 12 flights", "to boston ."]


def tiny_tagger(**overrides) -> SequenceTagger:
    preprocessor = SequenceTaggerPreprocessor(
        vocabulary=WORDS,
        characters=CHARACTERS,
        sequence_length=12,
        max_word_length=6,
        split_clitics=True,
        casing=overrides.get("casing_dim", 0) > 0,
    )
    config = {
        "vocabulary_size": len(WORDS) + 2,
        "character_vocabulary_size": len(CHARACTERS) + 2,
        "max_word_length": 6,
        "tag_names": TAGS,
        "intent_names": INTENTS,
        "embedding_dim": 4,
        "character_embedding_dim": 3,
        "character_units": 4,
        "units": 3,
        "num_layers": 2,
        **overrides,
    }
    return SequenceTagger(backbone_of(config), preprocessor=preprocessor, **config)


BACKBONE_KEYS = (
    *inspect.signature(RecurrentBackbone).parameters.keys() - {"kwargs"},
    *(set(STACK_ARGUMENTS) - {"return_sequences"}),
)


def backbone_of(config):
    """Takes the backbone's arguments out of `config`; returns the backbone."""
    return RecurrentBackbone(**{key: config.pop(key) for key in BACKBONE_KEYS if key in config})


@pytest.mark.parametrize(
    "text, split_clitics, tokens",
    [
        ("Flights from Boston, please.", False, ["Flights", "from", "Boston", ",", "please", "."]),
        ('He said "no" (twice)!', False, ["He", "said", '"', "no", '"', "(", "twice", ")", "!"]),
        (
            "The U.S. sold 1,000 shares on 1996-08-22 .",
            False,
            ["The", "U.S.", "sold", "1,000", "shares", "on", "1996-08-22", "."],
        ),
        ("It costs $5 at St. Louis", False, ["It", "costs", "$", "5", "at", "St.", "Louis"]),
        ("i'd like Germany's", False, ["i'd", "like", "Germany's"]),
        ("I don't like Germany's", True, ["I", "do", "n't", "like", "Germany", "'s"]),
        ("  spaced\tout \n", False, ["spaced", "out"]),
        ("", False, []),
    ],
)
def test_tokenizer_splits_punctuation_like_the_datasets(text, split_clitics, tokens):
    preprocessor = SequenceTaggerPreprocessor(split_clitics=split_clitics)
    assert preprocessor.tokenize(tf.constant([text])).to_list() == [[t.encode() for t in tokens]]


def test_preprocessor_encodes_words_lowercased_and_characters_cased():
    preprocessor = tiny_tagger().preprocessor
    features = preprocessor(tf.constant(["Boston 12", ""]))
    token_ids = features["token_ids"].numpy()
    # "Boston" -> "boston" (id 4); "12" -> "00", not in the vocabulary (OOV id 1); padding 0.
    np.testing.assert_array_equal(token_ids, [[4, 1], [0, 0]])
    characters = features["character_ids"].numpy()
    assert characters.shape == (2, 2, 6)
    expected_b = CHARACTERS.index("B") + 2
    assert characters[0, 0, 0] == expected_b and characters[0, 1, 2] == 0  # 6 wide, padded
    assert preprocessor(tf.constant("one"))["token_ids"].shape == (1,)
    single = preprocessor.encode_tokens(tf.constant(["to", "Denver"]))
    np.testing.assert_array_equal(single["token_ids"].numpy(), [2, 5])


def test_casing_classes_tell_what_lower_cased_word_ids_lose():
    tokens = ["-", "1,000", "1996-08-22", "F16", "clinton", "n't", "EU", "A", "U.S.", "ÉTÉ"]
    tokens += ["Germany", "Müller", "McDonald", "iPhone"]
    expected = [1, 2, 2, 3, 4, 4, 5, 5, 5, 5, 6, 6, 7, 7]
    np.testing.assert_array_equal(casing_ids(tf.constant(tokens)).numpy(), expected)
    assert max(expected) == CASING_CLASSES - 1
    preprocessor = tiny_tagger(casing_dim=2).preprocessor
    features = preprocessor(tf.constant(["Boston 12 EU", "to"]))
    np.testing.assert_array_equal(features["casing_ids"].numpy(), [[6, 2, 5], [4, 0, 0]])
    assert "casing_ids" not in tiny_tagger().preprocessor(tf.constant(["to"]))
    with pytest.raises(ValueError, match="casing_ids"):
        SequenceTagger(
            RecurrentBackbone(5, 4), preprocessor=tiny_tagger().preprocessor, casing_dim=2
        )


def test_preprocessor_errors_are_clear():
    with pytest.raises(ValueError, match="has no vocabulary"):
        SequenceTaggerPreprocessor()(tf.constant(["text"]))
    with pytest.raises(InputError, match="expects strings"):
        tiny_tagger().preprocessor.tokenize(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="single characters"):
        SequenceTaggerPreprocessor(characters=["ab"])


def test_config_and_saved_model_round_trip_of_the_options_smoke_models_lack():
    # The entry contract suite round-trips each entry's CRF, char-CNN smoke model.
    overrides = {"head": "softmax", "character_encoder": "bilstm", "casing_dim": 2}
    model = tiny_tagger(cell="gru", merge_mode="sum", **overrides)
    clone = SequenceTagger.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    expected, actual = model.predict(SENTENCES, verbose=0), loaded.predict(SENTENCES, verbose=0)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-6)


def test_preprocessor_adapts_words_and_characters_as_it_reads_them():
    preprocessor = SequenceTaggerPreprocessor(lowercase_characters=True, split_clitics=True)
    preprocessor.adapt(tf.data.Dataset.from_tensor_slices(["To Boston, 12 May", "to BOS"]))
    assert preprocessor.get_vocabulary() == ["to", ",", "00", "bos", "boston", "may"]
    assert preprocessor.get_characters()[:4] == ["o", "t", "b", "s"]  # by count, then character
    assert "B" not in preprocessor.get_characters()
    preprocessor.adapt(["to to from", "from to"], vocabulary_size=3, character_vocabulary_size=4)
    assert preprocessor.get_vocabulary() == ["to"] and preprocessor.get_characters() == ["o", "t"]
    np.testing.assert_array_equal(preprocessor(tf.constant(["To from"]))["token_ids"], [[2, 1]])


def test_layer_config_round_trips():
    encoder = CharacterEncoder(10, embedding_dim=3, encoder="bilstm", units=2, kernel_size=5)
    assert CharacterEncoder.from_config(encoder.get_config()).get_config() == encoder.get_config()
    preprocessor = tiny_tagger().preprocessor
    clone = SequenceTaggerPreprocessor.from_config(preprocessor.get_config())
    assert clone.get_config() == preprocessor.get_config()


@pytest.mark.parametrize("head, casing_dim", [("crf", 0), ("softmax", 2)])
def test_padding_and_neighbours_do_not_change_outputs(head, casing_dim):
    model = tiny_tagger(head=head, casing_dim=casing_dim)
    alone = model.predict(["flights to boston"], verbose=0)
    together = model.predict(["flights to boston", "the " * 11], verbose=0)
    np.testing.assert_array_equal(alone["tag_ids"][0, :3], together["tag_ids"][0, :3])
    np.testing.assert_allclose(alone["tag_scores"][0, :3], together["tag_scores"][0, :3], atol=1e-5)
    np.testing.assert_allclose(alone["intent_logits"][0], together["intent_logits"][0], atol=1e-5)
    assert np.all(together["tag_ids"][0, 3:] == 0)


@pytest.mark.parametrize(
    "overrides",
    [{"cell": "lstm", "head": "crf"}, {"cell": "gru", "head": "softmax", "intent_names": None}],
)
def test_one_training_step_updates_weights(overrides):
    model = tiny_tagger(dropout=0.1, **overrides)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01, clipnorm=1.0))
    features = model.preprocessor(tf.constant(SENTENCES))
    x = {k: v.numpy() for k, v in features.items()}
    tags = np.zeros(x["token_ids"].shape, "int32")
    tags[0, 2], tags[0, 4] = 1, 1
    y = {"tags": tags}
    if model.intent_names:
        y["intent"] = np.array([0, 1, -1])  # -1: an intent the model does not know
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert ("intent_accuracy" in history.history) == bool(model.intent_names)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_tag_probabilities_are_probabilities():
    for head in ("crf", "softmax"):
        model = tiny_tagger(head=head)
        outputs = model.predict(SENTENCES, verbose=0)
        mask = outputs["tag_ids"] * 0 + (np.arange(outputs["tag_ids"].shape[1]) < 3)
        probabilities = keras.ops.convert_to_numpy(
            model.tag_probabilities(outputs["tag_scores"], outputs["tag_ids"], mask > 0)
        )
        assert np.all((probabilities[:, :3] > 0) & (probabilities[:, :3] <= 1 + 1e-6))
        assert np.all(probabilities[:, 3:] == 0)


def test_config_validation_and_build():
    with pytest.raises(ConfigError, match="Unknown config key 'colour'.*Accepted keys"):
        resolve_config(SequenceTaggerConfig, {"colour": "red"})
    with pytest.raises(ConfigError, match="'head' must be one of softmax, crf"):
        resolve_config(SequenceTaggerConfig, {"head": "hmm"})
    with pytest.raises(ConfigError, match="'word_dropout' must be in"):
        resolve_config(SequenceTaggerConfig, {"word_dropout": "1.5"})
    with pytest.raises(ConfigError, match="'context_tokens' must be between 0 and sequence_length"):
        resolve_config(SequenceTaggerConfig, {"context_tokens": 300, "sequence_length": 256})
    with pytest.raises(UnknownEntryError, match="Known entries: .*ner.*slots"):
        zoo.build("nerr")
    model = zoo.build("ner", **{**TINY_TAGGER, "cell": "peephole_lstm", "head": "softmax"})
    assert isinstance(model, SequenceTagger) and model.intent_names is None
    assert (model.backbone.cell, model.head, len(model.tag_names)) == (
        "peephole_lstm",
        "softmax",
        9,
    )
    features = {"token_ids": np.array([[2, 3, 0]]), "character_ids": np.ones((1, 3, 8), "int32")}
    assert model.predict(features, verbose=0)["tag_scores"].shape == (1, 3, 9)
    slots = zoo.build("slots", **TINY_TAGGER)
    assert slots.intent_names and slots.preprocessor.lowercase_characters


JAX_SMOKE = textwrap.dedent("""
    import keras, numpy as np
    import zoo
    assert keras.backend.backend() == "jax"
    model = zoo.build("slots", **{tiny}, cell="gru")
    model.preprocessor.set_vocabulary(["to", "boston"])
    model.preprocessor.set_characters(list("abcdefghijklmnopqrstuvwxyz"))
    model.compile(optimizer=keras.optimizers.Adam(global_clipnorm=5.0))
    features = model.preprocessor(np.array(["to boston", "boston"]))
    x = {{k: v.numpy() for k, v in features.items()}}
    y = {{"tags": np.zeros((2, 2), "int32"), "intent": np.zeros(2, "int32")}}
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "intent_accuracy" in history.history
    print(model.predict(["to Boston", ""], verbose=0)["tag_ids"].shape)
    """)


def test_jax_backend_trains_the_crf_tagger_one_step():
    assert "(2, 32)" in run_on_jax(JAX_SMOKE.format(tiny=TINY_TAGGER))


def test_unlabeled_text_is_read_up_to_the_configured_number_of_documents():
    from zoo.models.sequence_tagger.sequence_tagger_family import SequenceTaggerFamily

    documents = ["Great film in Paris.<br /><br />Loved it", "Second review, 1999", "Third"]
    family = SequenceTaggerFamily(
        load_split=None, unlabeled_text=lambda: tf.data.Dataset.from_tensor_slices(documents)
    )
    preprocessor = SequenceTaggerPreprocessor(sequence_length=32, max_word_length=8)

    def read(count):
        config = resolve_config(SequenceTaggerConfig, {"unlabeled_documents": count})
        return family._unlabeled_words(preprocessor, config)

    assert read(0) == []
    assert read(2) == [
        ["great", "film", "in", "paris", ".", "loved", "it"],
        ["second", "review", ",", "0000"],
    ]
    assert len(read(10)) == 3
    with pytest.raises(ConfigError, match="unlabeled_documents"):
        read(-1)


def test_tag_confusions_count_token_errors_and_pick_the_most_confused_tags(tmp_path):
    from zoo.models.sequence_tagger.sequence_tagger_family import most_confused_tags, tag_confusions
    from zoo.plots import plot_confusions

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["B-LOC"]]
    predicted = [["B-PER", "O", "O", "B-ORG"], ["B-LOC", "O"], ["B-ORG"]]
    confusions = tag_confusions(gold, predicted)
    assert confusions == [
        {"gold": "B-LOC", "predicted": "B-ORG", "count": 2},
        {"gold": "B-ORG", "predicted": "B-LOC", "count": 1},
        {"gold": "I-PER", "predicted": "O", "count": 1},
    ]
    assert tag_confusions(gold, predicted, limit=1) == confusions[:1]
    assert most_confused_tags(confusions, limit=3) == ["B-LOC", "B-ORG", "I-PER"]
    assert most_confused_tags(confusions, limit=10) == ["O", "B-LOC", "B-ORG", "I-PER"]
    plot_confusions(confusions, ["O", "B-LOC", "B-ORG"], tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_training_drops_singletons_to_oov_and_can_freeze_the_embeddings(tmp_path):
    from zoo.models.sequence_tagger.sequence_tagger_family import SequenceTaggerFamily

    # "boston" and "denver" occur once in the training split, "flights" and "to" three times.
    sentences = [["flights", "to", "boston"], ["flights", "to", "denver"], ["flights", "to"]]
    cities = ("boston", "denver")

    def load_split(split):
        return tf.data.Dataset.from_tensor_slices(
            {
                "text": [" ".join(tokens) for tokens in sentences],
                "tokens": tf.ragged.constant(sentences),
                "tags": tf.ragged.constant(
                    [
                        ["B-LOC" if word in cities else "O" for word in tokens]
                        for tokens in sentences
                    ]
                ),
            }
        )

    family = SequenceTaggerFamily(load_split=load_split, tag_names=("O", "B-LOC"))
    config = resolve_config(
        SequenceTaggerConfig,
        {**TINY_TAGGER, "embedding_init": "random", "train_embeddings": "false"},
    )
    model = family.prepare_model(config, tmp_path)
    words = ["<padding>", "<oov>", *model.preprocessor.get_vocabulary()]
    singletons = family._singletons(
        family._examples(model, "train", config), model.backbone.vocabulary_size
    )
    assert sorted(words[i] for i in np.flatnonzero(singletons.numpy())) == ["boston", "denver"]

    def training_words(**overrides):
        train, _ = family.training_data(model, dataclasses.replace(config, **overrides))
        return [
            words[index]
            for features, _ in train.as_numpy_iterator()
            for index in features["token_ids"].ravel()
            if index
        ]

    kept = training_words(word_dropout=0.0, singleton_dropout=0.0)
    assert sorted(kept) == sorted(word for tokens in sentences for word in tokens)
    dropped = training_words(word_dropout=0.0, singleton_dropout=0.999)
    assert sorted(dropped) == ["<oov>"] * 2 + ["flights"] * 3 + ["to"] * 3

    # train_embeddings=false: a training step leaves the word vectors as they were.
    assert not model.backbone.token_embedding.trainable
    family.compile(model, config)
    embeddings = model.backbone.token_embedding.embeddings.numpy().copy()
    tag_kernel = model.tag_scores.kernel.numpy().copy()
    train, _ = family.training_data(model, config)
    model.fit(train, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.backbone.token_embedding.embeddings.numpy(), embeddings)
    assert not np.allclose(model.tag_scores.kernel.numpy(), tag_kernel)  # The rest trained.


def test_context_tokens_needs_documents_and_no_intent_head():
    from zoo.models.sequence_tagger.sequence_tagger_family import SequenceTaggerFamily

    def load_split(split, document=False):
        columns = {"tokens": tf.ragged.constant([["to", "boston"]]), "tags": [["O", "B-city"]]}
        columns["tags"] = tf.ragged.constant(columns["tags"])
        columns["intent"] = ["flight"]
        if document:
            columns["document"] = [0]
        return tf.data.Dataset.from_tensor_slices(columns)

    config = resolve_config(SequenceTaggerConfig, {**TINY_TAGGER, "context_tokens": 8})
    family = SequenceTaggerFamily(load_split=load_split)
    with pytest.raises(ConfigError, match="'context_tokens' needs documents; the 'dev' split"):
        family._examples(family.build(config), "dev", config)
    family = SequenceTaggerFamily(
        load_split=lambda split: load_split(split, document=True), with_intent=True
    )
    with pytest.raises(ConfigError, match="an intent is one sentence's.*context_tokens=0"):
        family._examples(family.build(config), "dev", config)


def test_iobes_marks_span_ends_and_maps_back_to_iob2_token_by_token():
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "B-ORG", "I-MISC", "O"]
    iobes = [t.decode() for t in iob2_to_iobes(tf.constant(iob2)).numpy()]
    assert iobes == [
        "B-PER",
        "E-PER",
        "O",
        "S-LOC",
        "B-LOC",
        "I-LOC",
        "E-LOC",
        "S-ORG",
        "E-MISC",
        "O",
    ]
    assert [iob2_tag_name(tag) for tag in iobes[:8]] == iob2[:8]
    assert iob2_to_iobes(tf.constant([], tf.string)).shape == (0,)
    names = iobes_tag_names(("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC"))
    assert names == [
        "O",
        "B-LOC",
        "I-LOC",
        "E-LOC",
        "S-LOC",
        "B-MISC",
        "I-MISC",
        "E-MISC",
        "S-MISC",
    ]
    with pytest.raises(ValueError, match="Not an IOB2 tag"):
        iobes_tag_names(("O", "S-LOC"))
    tagger = SequenceTagger(RecurrentBackbone(5, 4, units=4), tag_names=names, tag_scheme="iobes")
    assert tagger.output_tag_names == ["O"] + ["B-LOC", "I-LOC", "I-LOC", "B-LOC"] + [
        "B-MISC",
        "I-MISC",
        "I-MISC",
        "B-MISC",
    ]
    with pytest.raises(ValueError, match="tag_scheme must be one of"):
        SequenceTagger(RecurrentBackbone(5, 4), tag_names=names, tag_scheme="bilou")


def test_a_tagger_trained_in_iobes_predicts_and_serves_iob2_tags():
    names = iobes_tag_names(("O", "B-LOC", "I-LOC"))
    model = tiny_tagger(tag_names=names, tag_scheme="iobes", head="softmax", intent_names=None)
    # Every token scores highest on one IOBES-only tag: S-LOC, then E-LOC.
    family = get_entry("ner").family
    serve = family.serving_function(model)
    for iobes_tag, iob2_tag in (("S-LOC", "B-LOC"), ("E-LOC", "I-LOC")):
        bias = np.zeros(len(names), "float32")
        bias[names.index(iobes_tag)] = 100.0
        model.tag_scores.bias.assign(bias)
        (record,) = family.predict_records(model, ["flights to boston"])
        assert record["tags"] == [iob2_tag] * 3
        served = serve(tf.constant(["flights to boston"]))["tags"].numpy()
        assert [tag.decode() for tag in served[0]] == [iob2_tag] * 3


def test_train_on_development_joins_the_dev_split_to_training_and_keeps_the_last_epoch(tmp_path):
    from zoo.models.sequence_tagger.sequence_tagger_family import SequenceTaggerFamily

    splits = {"train": [["flights", "to", "boston"]], "dev": [["fares", "to", "paris"]]}

    def load_split(split):
        sentences = splits[split]
        return tf.data.Dataset.from_tensor_slices(
            {
                "text": [" ".join(tokens) for tokens in sentences],
                "tokens": tf.ragged.constant(sentences),
                "tags": tf.ragged.constant([["O", "O", "B-LOC"]] * len(sentences)),
            }
        )

    family = SequenceTaggerFamily(load_split=load_split, tag_names=("O", "B-LOC"))
    for joined in (False, True):
        config = resolve_config(
            SequenceTaggerConfig,
            {**TINY_TAGGER, "embedding_init": "random", "train_on_development": joined},
        )
        assert family.selects_epoch(config) is not joined
        (tmp_path / str(joined)).mkdir()
        model = family.prepare_model(config, tmp_path / str(joined))
        vocabulary = model.preprocessor.get_vocabulary()
        assert ("paris" in vocabulary and "fares" in vocabulary) is joined
        assert "boston" in vocabulary
        train, validation = family.training_data(model, config)
        count = sum(len(features["token_ids"]) for features, _ in train.as_numpy_iterator())
        assert count == 1 + joined
        # The dev split is still scored every epoch (marked as trained on in metrics).
        assert sum(len(f["token_ids"]) for f, _ in validation.as_numpy_iterator()) == 1
