"""Vocabularies shared by every family: the special ids, the most frequent words, and word2vec
embeddings trained on the task's own text (gensim) to initialise embedding tables.

No pretrained word vectors are available offline, and the zoo trains only on its datasets' text:
a task's own training split plus the unlabeled text the mirror holds (IMDB's reviews, PTB's news
sentences), as each entry's recipe says.
"""

from __future__ import annotations

import collections
import os

import keras
import numpy as np

from zoo.progress import progress_bar

# Id 0 pads, id 1 is out-of-vocabulary; a vocabulary's words take ids 2, 3, ... in order.
PAD_ID, OOV_ID = 0, 1
PAD_TOKEN, OOV_TOKEN = "", "[UNK]"

WORD2VEC_ARCHITECTURES = ("cbow", "skipgram")


def string_lookup(
    vocabulary, invert: bool = False, oov_token: str = OOV_TOKEN, name: str | None = None
) -> keras.layers.StringLookup:
    """A `keras.layers.StringLookup` with the zoo's ids: 0 pads, 1 is out-of-vocabulary and
    `vocabulary[i]` is i + 2. `invert=True` maps ids back to words (padding -> "", any
    unknown id -> `oov_token`), which decoders need.

    The vocabulary goes into the layer's config, so it is saved with the model (no asset file).
    Words are compared as UTF-8 bytes; duplicates, the empty string and `oov_token` are refused.
    """
    vocabulary = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in vocabulary]
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("The vocabulary has duplicate entries.")
    for reserved in (PAD_TOKEN, oov_token):
        if reserved in vocabulary:
            raise ValueError(f"The vocabulary holds the reserved token {reserved!r}.")
    return keras.layers.StringLookup(
        vocabulary=vocabulary,
        mask_token=PAD_TOKEN,
        oov_token=oov_token,
        num_oov_indices=1,
        invert=invert,
        name=name,
    )


def lookup_table(lookup: keras.layers.StringLookup):
    """The TF hash table behind a StringLookup, which an exported SavedModel must track.

    `lookup_table` is an attribute of Keras's IndexLookup with no public accessor; Keras's own
    saving reads it (tests/test_private_keras_apis.py fails if it moves).
    """
    return lookup.lookup_table


def most_frequent_words(sentences: list[list[str]], size: int) -> list[str]:
    """The `size` most frequent words; ties broken by the word, so data order does not matter."""
    counts = collections.Counter(word for sentence in sentences for word in sentence)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in ranked[:size]]


def word2vec_matrix(
    sentences: list[list[str]],
    vocabulary: list[str],
    dim: int,
    epochs: int = 5,
    seed: int = 1337,
    workers: int | None = None,
    skipgram: bool = False,
) -> np.ndarray:
    """Trains word2vec on `sentences`; returns a (len(vocabulary) + 2, dim) matrix.

    CBOW by default; `skipgram` trains skip-gram (about 3x slower, better vectors for rare
    words, which is what most names are).

    Row 0 (padding) is zero, row 1 (out-of-vocabulary) and rows of words word2vec did not keep
    are drawn at the scale of the learned vectors, and row i + 2 is `vocabulary[i]`'s vector.
    """
    # Imported here: only training with word2vec needs gensim.
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    if workers is None:
        workers = max(1, min(8, os.cpu_count() or 1))
    architecture = "skip-gram" if skipgram else "CBOW"
    bar = progress_bar(
        epochs,
        f"Training word2vec ({architecture}, {dim} dimensions) on {len(sentences):,} texts, "
        f"{epochs} epoch{'s' if epochs != 1 else ''}...",
        unit="epoch",
    )

    class EpochBar(CallbackAny2Vec):
        def on_epoch_end(self, model):
            bar.add(1)

    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        window=5,
        min_count=2,
        sg=int(skipgram),
        negative=5,
        epochs=epochs,
        seed=seed,
        workers=workers,
        callbacks=[EpochBar()],
    )
    vectors = model.wv
    scale = float(np.std(vectors.vectors))
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale, size=(len(vocabulary) + 2, dim)).astype("float32")
    matrix[0] = 0.0
    for index, word in enumerate(vocabulary):
        if word in vectors.key_to_index:
            matrix[index + 2] = vectors[word]
    return matrix
