"""The many-to-many sequence tagging family: a raw sentence in, one tag per token out.

Slot filling (with a joint intent) and named entity recognition are this one family over two
datasets. Training and evaluation read the datasets' own tokens; the served model tokenizes
raw sentences in the graph the same way the datasets are tokenized.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipelines.name_substitution import (
    NameSubstitution,
    dataset_from_examples,
    examples_from_dataset,
)
from pipelines.transforms import bucket_by_length, pack_documents, recased, with_casing_copies
from zoo.errors import ConfigError, ZooError
from zoo.family import Family, ValidationScore
from zoo.layers import RecurrentBackbone
from zoo.models.sequence_tagger.sequence_tagger import SequenceTagger
from zoo.models.sequence_tagger.sequence_tagger_preprocessor import (
    SequenceTaggerPreprocessor,
    tokenize_sentences,
)
from zoo.models.sequence_tagger.sequence_tagger_scoring import most_confused_tags, tag_confusions
from zoo.models.sequence_tagger.tag_schemes import iob2_to_iobes, iobes_tag_names
from zoo.plots import plot_confusions
from zoo.progress import dataset_size, progress
from zoo.task import predict_on_whole_batch
from zoo.vocabulary import OOV_ID, most_frequent_words, word2vec_matrix

# Placeholders for `zoo.build` before training has read the tag and character sets.
UNTRAINED_TAGS = ("O",)
UNTRAINED_INTENTS = ("unknown",)
UNTRAINED_CHARACTER_VOCABULARY_SIZE = 128
CONFUSION_PLOT_TAGS = 12
# Copies of an evaluated split that `evaluate` also scores: the text re-cased, and every name
# of the entry's `name_substitution` types replaced by one the training split never has.
CASED_VARIANTS = {"lowercased": "lower", "uppercased": "upper"}
UNSEEN_NAMES = "unseen_names"
VARIANT_KEYS = ("f1", "precision", "recall", "intent_accuracy", "per_type", "num_examples")


def string_table(keys, default: int) -> tf.lookup.StaticHashTable:
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(keys), dtype=tf.string), tf.range(len(keys), dtype=tf.int32)
        ),
        default_value=default,
    )


def decode_strings(values) -> list[str]:
    return [value.decode("utf-8") for value in values]


class SequenceTaggerFamily(Family):
    """Sequence tagger over a dataset of tokenized, tagged sentences.

    Args:
        load_split: callable. Split name ("train", "dev", "test") -> dataset of examples
            {"text": sentence, "tokens": its tokens, "tags": one IOB2 tag per token} (and
            "intent" with `with_intent`), all tf.string.
        tag_names: tuple of str or None. The tag set in a fixed order; None reads it from the
            training split ("O" first, then sorted).
        with_intent: bool. Adds the joint intent head (many-to-one) and its accuracy.
        per_type_metrics: bool. Also report precision / recall / F1 per span type.
        validation_split: str. The development split that selects the best epoch.
        unlabeled_text: callable or None. () -> dataset of raw documents (tf.string) from which
            word2vec and the vocabulary learn words the training split lacks; the config's
            `unlabeled_documents` says how many are read.
        name_substitution: NameSubstitution or None. The span types whose names `evaluate`
            replaces by unseen ones (the `unseen_names` variant, per split its own pool of
            names), and that `value_substitution` and `name_word_dropout` train on.
    """

    metric = "f1"
    model_class = SequenceTagger

    def __init__(
        self,
        load_split: Callable[[str], tf.data.Dataset],
        tag_names: tuple[str, ...] | None = None,
        with_intent: bool = False,
        per_type_metrics: bool = False,
        validation_split: str = "dev",
        unlabeled_text: Callable[[], tf.data.Dataset] | None = None,
        name_substitution: NameSubstitution | None = None,
    ):
        self.load_split = load_split
        self.tag_names = tag_names
        self.with_intent = with_intent
        self.per_type_metrics = per_type_metrics
        self.validation_split = validation_split
        self.unlabeled_text = unlabeled_text
        self.name_substitution = name_substitution

    def _preprocessor(self, config, vocabulary=None, characters=None):
        return SequenceTaggerPreprocessor(
            vocabulary=vocabulary,
            characters=characters,
            sequence_length=config.sequence_length,
            max_word_length=config.max_word_length,
            lowercase_characters=config.lowercase_characters,
            split_clitics=config.split_clitics,
            casing=config.casing_dim > 0,
        )

    def build(self, config, preprocessor=None, tag_names=None, intent_names=None):
        """A fresh tagger; before training reads the data, vocabularies and tags are placeholders."""
        if preprocessor is None:
            preprocessor = self._preprocessor(config)
        if tag_names is None:
            tag_names = self.tag_names or UNTRAINED_TAGS
        if intent_names is None and self.with_intent:
            intent_names = UNTRAINED_INTENTS
        backbone = RecurrentBackbone(
            preprocessor.vocabulary_size if preprocessor.vocabulary else config.vocabulary_size,
            config.embedding_dim,
            embedding_dropout=config.embedding_dropout,
            name="backbone",
            **config.encoder_arguments(),
        )
        return SequenceTagger(
            backbone,
            preprocessor=preprocessor,
            character_vocabulary_size=(
                preprocessor.character_vocabulary_size
                if preprocessor.characters
                else UNTRAINED_CHARACTER_VOCABULARY_SIZE
            ),
            max_word_length=config.max_word_length,
            tag_names=tag_names,
            tag_scheme=config.tag_scheme,
            intent_names=intent_names,
            casing_dim=config.casing_dim,
            character_encoder=config.character_encoder,
            character_embedding_dim=config.character_embedding_dim,
            character_units=config.character_units,
            character_kernel_size=config.character_kernel_size,
            head=config.head,
            intent_loss_weight=config.intent_loss_weight,
        )

    def selects_epoch(self, config) -> bool:
        return not config.train_on_development

    def _training_examples(self, config, augment=False) -> tf.data.Dataset:
        """The training split, followed by the development split with `train_on_development`;
        with `augment`, then the copies `value_substitution` adds."""
        examples = self.load_split("train")
        if config.train_on_development:
            examples = examples.concatenate(self.load_split(self.validation_split))
        if augment and config.value_substitution:
            plain = examples_from_dataset(examples)
            copies = self._substitution().augmented(plain, config.value_substitution, config.seed)
            print(f"Training on {len(copies):,} copies with substituted names.", flush=True)
            examples = dataset_from_examples(plain + copies, examples.element_spec)
        return examples

    def _substitution(self) -> NameSubstitution:
        if self.name_substitution is None:
            raise ConfigError(
                "This entry substitutes no names: 'value_substitution' and "
                "'name_word_dropout' need a family with `name_substitution`."
            )
        return self.name_substitution

    def _split_examples(self, split: str, variant: str | None = None):
        """(examples of a split or of one of its variants, what the variant changed or None)."""
        examples = self.load_split(split)
        if variant in CASED_VARIANTS:
            case = CASED_VARIANTS[variant]
            return (
                examples.map(
                    lambda example: recased(example, case), num_parallel_calls=tf.data.AUTOTUNE
                ),
                None,
            )
        if variant == UNSEEN_NAMES:
            substituted, mapping = self._substitution().substituted(
                examples_from_dataset(examples), split
            )
            record = {
                "seed": self.name_substitution.seed,
                "num_substituted": sum(len(values) for values in mapping.values()),
                "mapping": mapping,
            }
            substituted_examples = dataset_from_examples(substituted, examples.element_spec)
            # A generator's dataset has no count of its own: its progress bar gets the list's.
            count = tf.data.experimental.assert_cardinality(len(substituted))
            return substituted_examples.apply(count), record
        if variant is not None:
            raise ValueError(f"Unknown variant {variant!r}.")
        return examples, None

    def prepare_model(self, config, run_dir: Path) -> SequenceTagger:
        joined = f" + {self.validation_split}" if config.train_on_development else ""
        training = self._training_examples(config)
        examples = list(
            progress(
                training.as_numpy_iterator(),
                dataset_size(training),
                f"Reading the training split{joined}...",
                unit="sentence",
            )
        )
        sentences = [decode_strings(example["tokens"]) for example in examples]
        preprocessor = self._preprocessor(config)
        tokens = tf.ragged.constant(sentences, dtype=tf.string)
        words = [decode_strings(row) for row in preprocessor.normalize_words(tokens).to_list()]
        if config.lowercase_characters:
            tokens = tf.strings.lower(tokens, encoding="utf-8")
        characters = tf.strings.unicode_split(tokens.flat_values, "UTF-8", errors="replace")
        character_counts = collections.Counter(decode_strings(characters.flat_values.numpy()))
        unlabeled = self._unlabeled_words(preprocessor, config)
        vocabulary = most_frequent_words(words, config.vocabulary_size - 2)
        if unlabeled:
            known = set(vocabulary)
            extra = [
                word
                for word in most_frequent_words(unlabeled, len(known) + config.vocabulary_size)
                if word not in known
            ]
            vocabulary += extra[: config.vocabulary_size - 2 - len(vocabulary)]
        preprocessor.set_vocabulary(vocabulary)
        preprocessor.set_characters(
            sorted(
                character_counts, key=lambda character: (-character_counts[character], character)
            )
        )
        tags = {tag for example in examples for tag in decode_strings(example["tags"])}
        tag_names = self.tag_names or ("O", *sorted(tags - {"O"}))
        if config.tag_scheme == "iobes":
            tag_names = iobes_tag_names(tag_names)
        intent_names = None
        if self.with_intent:
            intent_names = sorted({example["intent"].decode("utf-8") for example in examples})
        for name, items in (
            ("vocabulary", preprocessor.get_vocabulary()),
            ("characters", preprocessor.get_characters()),
            ("tags", tag_names),
            ("intents", intent_names or []),
        ):
            (run_dir / f"{name}.txt").write_text("".join(f"{item}\n" for item in items))
        model = self.build(
            config, preprocessor=preprocessor, tag_names=tag_names, intent_names=intent_names
        )
        if config.embedding_init == "word2vec":
            matrix = word2vec_matrix(
                words + unlabeled,
                preprocessor.get_vocabulary(),
                dim=config.embedding_dim,
                epochs=config.word2vec_epochs,
                seed=config.seed,
                skipgram=config.word2vec_architecture == "skipgram",
            )
            model.backbone.token_embedding.embeddings.assign(matrix)
        model.backbone.token_embedding.trainable = config.train_embeddings
        return model

    def _unlabeled_words(self, preprocessor, config) -> list[list[str]]:
        """The first `unlabeled_documents` documents of the unlabeled text, as normalized words."""
        if not config.unlabeled_documents or self.unlabeled_text is None:
            return []
        documents = []
        texts = self.unlabeled_text().take(config.unlabeled_documents)
        batches = progress(
            texts.batch(1024).prefetch(tf.data.AUTOTUNE),
            dataset_size(texts),
            f"Tokenizing {config.unlabeled_documents:,} unlabeled documents (at most)...",
            unit="document",
            size=len,
        )
        for text in batches:
            text = tf.strings.regex_replace(text, r"<[^>]*>", " ")  # HTML line breaks.
            # A document has many sentences: split each one's final period as the tokenizer
            # does at the end of a sentence ("Paris. Then" -> "Paris . Then").
            text = tf.strings.regex_replace(text, r"([^\s.][^\s.])\.(\s)", r"\1 .\2")
            tokens = tokenize_sentences(text, config.split_clitics)
            documents += [
                decode_strings(row) for row in preprocessor.normalize_words(tokens).to_list()
            ]
        return documents

    def _examples(
        self,
        model: SequenceTagger,
        split: str,
        config,
        with_references=False,
        examples: tf.data.Dataset | None = None,
        augment=False,
    ):
        """(features, labels) per sentence, or per packed run of sentences with
        `context_tokens`; with references, the gold strings (and `sentence_lengths`) as labels.

        `examples` replaces the split's own (a variant of it); `augment` adds the training
        copies of `value_substitution` and `casing_augmentation`.
        """
        tag_table = string_table(model.tag_names, default=0)
        intent_table = string_table(model.intent_names, default=-1) if model.intent_names else None
        if examples is None:
            examples = self._split_or_training(split, config, augment)
        if config.context_tokens:
            if self.with_intent:
                raise ConfigError(
                    "Config key 'context_tokens' packs sentences together; an intent is one "
                    "sentence's, so it needs context_tokens=0."
                )
            if "document" not in examples.element_spec:
                raise ConfigError(
                    f"Config key 'context_tokens' needs documents; the {split!r} split has none."
                )
            examples = pack_documents(examples, config.context_tokens)
        if augment and config.casing_augmentation:
            examples = with_casing_copies(examples, config.casing_augmentation, config.seed)

        def encode(example):
            features = model.preprocessor.encode_tokens(example["tokens"])
            if with_references:
                labels = {"tags": example["tags"]}
                for key in ("intent", "sentence_lengths"):
                    if key in example:
                        labels[key] = example[key]
                return features, labels
            # Tags and intents unknown to the model (test-only ones) become "O" and -1.
            tags = example["tags"]
            if config.tag_scheme == "iobes":
                tags = iob2_to_iobes(tags)
            labels = {"tags": tag_table.lookup(tags)}
            if intent_table is not None:
                labels["intent"] = intent_table.lookup(example["intent"])
            return features, labels

        return examples.map(encode, num_parallel_calls=tf.data.AUTOTUNE)

    def _split_or_training(self, split: str, config, augment=False) -> tf.data.Dataset:
        """A split's examples; for "train", those training reads (see `_training_examples`)."""
        if split == "train":
            return self._training_examples(config, augment)
        return self.load_split(split)

    def _batch(self, dataset, config) -> tf.data.Dataset:
        return bucket_by_length(
            dataset,
            config.batch_size,
            config.sequence_length,
            step=config.bucket_step,
            length_fn=lambda features, labels: tf.shape(features["token_ids"])[0],
        )

    def training_data(self, model, config):
        train = self._examples(model, "train", config, augment=True).cache()
        singletons = name_tags = None
        if config.singleton_dropout:
            # Counted without the training copies, which would make a singleton's count 2.
            singletons = self._singletons(
                self._examples(model, "train", config), model.backbone.vocabulary_size
            )
        if config.name_word_dropout:
            substitution = self._substitution()
            name_tags = tf.constant(
                [tag != "O" and substitution.kind(tag[2:]) is not None for tag in model.tag_names]
            )

        def drop_words(features, labels):
            token_ids = features["token_ids"]
            draws = tf.random.uniform(tf.shape(token_ids), seed=config.seed)
            dropped = draws < config.word_dropout
            # One draw decides all: a word is dropped with the largest probability it has.
            if singletons is not None:
                dropped |= tf.gather(singletons, token_ids) & (draws < config.singleton_dropout)
            if name_tags is not None:
                in_name = tf.gather(name_tags, labels["tags"])
                dropped |= in_name & (draws < config.name_word_dropout)
            dropped &= token_ids > OOV_ID
            return {**features, "token_ids": tf.where(dropped, OOV_ID, token_ids)}, labels

        train = train.shuffle(50_000, seed=config.seed, reshuffle_each_iteration=True)
        if config.word_dropout or config.singleton_dropout or config.name_word_dropout:
            train = train.map(drop_words, num_parallel_calls=tf.data.AUTOTUNE)
        train = self._batch(train, config)
        # Buckets fill at different rates; shuffling batches keeps lengths mixed in time.
        train = train.shuffle(64, seed=config.seed).prefetch(tf.data.AUTOTUNE)
        validation = self._batch(self._examples(model, self.validation_split, config), config)
        return train, validation.cache().prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _singletons(examples: tf.data.Dataset, vocabulary_size: int) -> tf.Tensor:
        """(vocabulary_size,) bool: the word ids that occur exactly once in `examples`."""
        counts = np.zeros(vocabulary_size, dtype=np.int64)
        for features, _ in progress(
            examples.as_numpy_iterator(),
            dataset_size(examples),
            "Counting the words seen once (for singleton_dropout)...",
            unit="example",
        ):
            counts += np.bincount(features["token_ids"], minlength=vocabulary_size)
        return tf.constant(counts == 1)

    def compile(self, model, config) -> None:
        # The model computes its own loss (CRF or softmax, plus intent) and intent accuracy.
        model.compile(optimizer=self.optimizer(config))

    def callbacks(self, model, config) -> list[keras.callbacks.Callback]:
        """`val_f1`: seqeval's span F1 on the whole development split, after every epoch."""
        score = functools.partial(
            self._score,
            model,
            config,
            self.validation_split,
            # On a new line: Keras's epoch bar leaves its line open until the epoch ends.
            label=f"\nTagging the {self.validation_split} split for its F1...",
        )
        return [ValidationScore("f1", score, "development span F1 (seqeval)")]

    def _score(
        self,
        model: SequenceTagger,
        config,
        split: str,
        examples: tf.data.Dataset | None = None,
        label: str | None = None,
    ) -> dict:
        """Span metrics (seqeval, conlleval rules) over every sentence of a split (or of
        `examples`, a variant of it), with a progress bar under `label`."""
        from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

        gold, predicted, intent_hits = [], [], []
        tag_names = model.output_tag_names  # IOB2, as the references are.
        if examples is None:
            examples = self._split_or_training(split, config)
        batches = self._examples(model, split, config, with_references=True, examples=examples)
        batches = self._batch(batches, config)
        batches = progress(
            batches.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(),
            dataset_size(examples),  # Bucketed (and packed) batches: counted in sentences.
            label or f"Tagging the {split} split...",
            unit="sentence",
            size=lambda batch: sentences_in(*batch),
        )
        for features, references in batches:
            # Batches of any size, also when a data-parallel run splits them over devices.
            outputs = predict_on_whole_batch(model, features)
            tag_ids = keras.ops.convert_to_numpy(outputs["tag_ids"])
            lengths = (features["token_ids"] != 0).sum(axis=1)
            # A packed example splits back into its sentences: every score counts sentences.
            sentence_lengths = references.get("sentence_lengths", lengths[:, None])
            for row, reference, length, sentences in zip(
                tag_ids, references["tags"], lengths, sentence_lengths
            ):
                start = 0
                for end in np.cumsum(sentences[sentences > 0]):
                    end = min(end, length)
                    gold.append(decode_strings(reference[start:end]))
                    predicted.append([tag_names[index] for index in row[start:end]])
                    start = end
            if self.with_intent:
                logits = keras.ops.convert_to_numpy(outputs["intent_logits"])
                for index, reference in zip(logits.argmax(axis=-1), references["intent"]):
                    intent_hits.append(model.intent_names[index] == reference.decode("utf-8"))
        results = {
            "f1": float(f1_score(gold, predicted)),
            "precision": float(precision_score(gold, predicted)),
            "recall": float(recall_score(gold, predicted)),
        }
        if self.with_intent:
            # Intents absent from the training split (some test ones) count as errors.
            results["intent_accuracy"] = float(np.mean(intent_hits))
        if self.per_type_metrics:
            report = classification_report(gold, predicted, output_dict=True, zero_division=0)
            results["per_type"] = {
                span_type: {
                    "precision": float(scores["precision"]),
                    "recall": float(scores["recall"]),
                    "f1": float(scores["f1-score"]),
                    "support": int(scores["support"]),
                }
                for span_type, scores in sorted(report.items())
                if " avg" not in span_type
            }
        results["confusions"] = tag_confusions(gold, predicted)
        results["num_examples"] = len(gold)
        return results

    def save_figures(self, results: dict, output_dir: Path) -> list[str]:
        """confusion.png: token counts of the most confused tags on the evaluated split."""
        if not results.get("confusions"):
            return []
        tags = most_confused_tags(results["confusions"], limit=CONFUSION_PLOT_TAGS)
        plot_confusions(
            results["confusions"],
            tags,
            Path(output_dir) / "confusion.png",
            title=f"Token errors among the {len(tags)} most confused tags",
        )
        return ["confusion.png"]

    def tokenizer_agreement(self, model: SequenceTagger, split: str) -> float:
        """Fraction of sentences whose text the in-graph tokenizer splits into the gold tokens."""
        agree = total = 0
        examples = self.load_split(split).ragged_batch(256)
        for batch in examples.prefetch(tf.data.AUTOTUNE):
            tokenized = model.preprocessor.tokenize(batch["text"]).to_list()
            for tokens, gold in zip(tokenized, batch["tokens"].to_list()):
                agree += tokens == gold
                total += 1
        return agree / max(total, 1)

    def variants(self) -> list[str]:
        """The variants of a split that `evaluate` scores beside the split as distributed."""
        return [*CASED_VARIANTS, *([UNSEEN_NAMES] if self.name_substitution else [])]

    def score_variants(self, model: SequenceTagger, config, split: str) -> dict:
        """{variant: its span metrics (and what it substituted)} for each of `variants()`."""
        results = {}
        for variant in self.variants():
            examples, record = self._split_examples(split, variant)
            label = f"Tagging the {split} split, variant {variant}..."
            scores = self._score(model, config, split, examples, label=label)
            results[variant] = {key: scores[key] for key in VARIANT_KEYS if key in scores}
            results[variant].update(record or {})
        return results

    def evaluate(self, model, config, split: str) -> dict:
        """Span metrics on the split, on its `variants()` (`variants`) and on the development
        split and its variants (`dev`), which choose a model: the test variants never do."""
        results = self._score(model, config, split)
        results["variants"] = self.score_variants(model, config, split)
        if config.context_tokens:
            # What the served model scores when every sentence comes alone.
            alone = self._score(
                model,
                dataclasses.replace(config, context_tokens=0),
                split,
                label=f"Tagging the {split} split, each sentence alone...",
            )
            results["sentences_alone"] = {
                key: alone[key] for key in ("f1", "precision", "recall", "num_examples")
            }
        if split != self.validation_split:
            results["dev"] = self._score(model, config, self.validation_split)
            results["dev"]["variants"] = self.score_variants(model, config, self.validation_split)
            # Scores on data the model was trained on: kept, but marked as not held out.
            results["dev"]["trained_on"] = config.train_on_development
        results["tokenizer_agreement"] = self.tokenizer_agreement(model, split)
        return results

    def postprocess(self, model: SequenceTagger, text, outputs) -> dict[str, tf.Tensor]:
        """Raw sentences and the model's outputs for them -> tokens, tags, tag_probability,
        num_tokens (and intent, intent_probability).

        `tokens`, `tags` and `tag_probability` are (batch, time), right-padded: positions at
        and after a sentence's `num_tokens` hold "" and 0. Sentences longer than the model's
        `sequence_length` tokens are cut; `num_tokens` and `tokens` say what was tagged, and
        `truncated` that tokens were left untagged. A sentence without a token gets no intent:
        intent "" and intent_probability 0.
        """
        tokens = model.preprocessor.tokenize(text)
        all_tokens = model.preprocessor.tokenize(text, cut=False).row_lengths()
        tag_ids = tf.cast(outputs["tag_ids"], tf.int32)
        batch_size = tf.shape(tag_ids, out_type=tf.int64)[0]
        length = tf.shape(tag_ids, out_type=tf.int64)[1]
        mask = tf.sequence_mask(tokens.row_lengths(), length)
        probabilities = model.tag_probabilities(
            backend_tensor(outputs["tag_scores"]), backend_tensor(tag_ids), backend_tensor(mask)
        )
        served = {
            "tokens": tokens.to_tensor(default_value="", shape=tf.stack([batch_size, length])),
            "tags": tf.where(mask, tf.gather(tf.constant(model.output_tag_names), tag_ids), ""),
            "tag_probability": tf.cast(as_tf(probabilities), tf.float32),
            "num_tokens": tf.cast(tokens.row_lengths(), tf.int32),
            "truncated": all_tokens > tokens.row_lengths(),
        }
        if model.intent_names:
            empty = tf.equal(tokens.row_lengths(), 0)
            intent_probabilities = tf.nn.softmax(tf.cast(outputs["intent_logits"], tf.float32))
            intents = tf.gather(
                tf.constant(model.intent_names), tf.argmax(intent_probabilities, axis=-1)
            )
            served["intent"] = tf.where(empty, "", intents)
            served["intent_probability"] = tf.where(
                empty, 0.0, tf.reduce_max(intent_probabilities, axis=-1)
            )
        return served

    def check_model(self, model, source) -> None:
        super().check_model(model, source)
        if bool(model.intent_names) != self.with_intent:
            raise ZooError(
                f"{source} holds a tagger {'with' if model.intent_names else 'without'} an "
                f"intent head; this entry's has {'one' if self.with_intent else 'none'}: it is "
                "another entry's model."
            )


def sentences_in(features, references) -> int:
    """The sentences of a batch of references (a packed example holds several)."""
    if "sentence_lengths" in references:
        return int(np.sum(references["sentence_lengths"] > 0))
    return len(features["token_ids"])


def backend_tensor(value):
    """`value` as a tensor of the Keras backend: in the served graph (TensorFlow) it stays a TF
    tensor; eagerly on JAX or torch (`predict_records`), it goes there through NumPy."""
    if keras.backend.backend() == "tensorflow":
        return value
    return keras.ops.convert_to_tensor(np.asarray(value))


def as_tf(value) -> tf.Tensor:
    """A tensor of the Keras backend as a TF tensor (the inverse of `backend_tensor`)."""
    if keras.backend.backend() == "tensorflow":
        return value
    return tf.convert_to_tensor(keras.ops.convert_to_numpy(value))
