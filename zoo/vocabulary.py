"""Vocabularies shared by every family: the special ids, the most frequent words, and word2vec
embeddings trained on the task's own text (gensim) to initialise embedding tables.

No pretrained word vectors are available offline, and the zoo trains only on its datasets' text:
a task's own training split plus the unlabeled text the mirror holds (IMDB's reviews, PTB's news
sentences), as each entry's recipe says.
"""

from __future__ import annotations

import collections
import os

import numpy as np

# Id 0 pads, id 1 is out-of-vocabulary; a vocabulary's words take ids 2, 3, ... in order.
PAD_ID, OOV_ID = 0, 1

WORD2VEC_ARCHITECTURES = ("cbow", "skipgram")


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
    from gensim.models import Word2Vec  # Imported here: only training with word2vec needs it.

    if workers is None:
        workers = max(1, min(8, os.cpu_count() or 1))

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
