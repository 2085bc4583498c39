"""Progress bars with a known total and an ETA for the long phases outside `fit` (tokenizing,
word2vec, caching features, evaluating), so that a first run says what it is doing and for how
long. `ZOO_VERBOSE` sets how much is shown, as for `fit`: 0 nothing, 1 bars, 2 a line per phase.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import keras


def verbosity() -> int:
    """`ZOO_VERBOSE` (default 1): Keras's `verbose` for `fit` and for every bar here."""
    return int(os.environ.get("ZOO_VERBOSE", "1"))


def dataset_size(dataset) -> int | None:
    """The number of elements of a tf.data dataset when known without reading it, else None
    (bucketing, filtering and `unbatch` lose it)."""
    size = int(dataset.cardinality())
    return size if size >= 0 else None


def progress_bar(total: int | None, label: str, unit: str = "step") -> keras.utils.Progbar:
    """Prints `label` (what the phase is) on a line of its own and returns a
    `keras.utils.Progbar` to `total` units, drawn at 0 already: its total shows at once."""
    verbose = verbosity()
    if verbose:
        print(label, flush=True)
    bar = keras.utils.Progbar(total, verbose=verbose, unit_name=unit)
    bar.update(0)
    return bar


def progress(
    items: Iterable,
    total: int | None,
    label: str,
    unit: str = "step",
    size: Callable[[object], int] | None = None,
) -> Iterator:
    """Yields `items`, advancing a bar to `total` (see `progress_bar`) as each is done: by 1,
    or by `size(item)` (the examples in a batch, for a total counted in examples).

    The bar ends on its own line when the items do, also when `total` was not reached.
    """
    bar, done = progress_bar(total, label, unit), 0
    for item in items:
        yield item
        done += 1 if size is None else int(size(item))
        bar.update(done, finalize=False)
    bar.update(done, finalize=True)
