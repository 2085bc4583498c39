"""A tiny model of any registered entry, built without datasets.

`smoke_model(name)` is `zoo.build(name, **entry.smoke_config)` with its preprocessor adapted to
`SAMPLE_TEXTS`: what a new entry needs for the contract suite is a `smoke_config` in its
registration and an `adapt(texts)` method on its preprocessor.
"""

from __future__ import annotations

import functools

import keras

import zoo
from zoo.registry import get_entry

# What the smoke models' vocabularies are built from: few enough distinct words (and
# characters) for any smoke config's vocabulary_size (about 40), a little of every domain.
SAMPLE_TEXTS = [
    "A wonderful, moving film. Great acting!",
    "An awful, boring mess; bad plot.",
    "Flights from Boston to Denver on Monday",
    "EU rejects German call to boycott British lamb.",
    "Peter Blackburn didn't fly to Brussels in 1996",
]
# Sentences the contract checks predict and serve: in-vocabulary words, OOV words, casing,
# digits, punctuation and lengths from 2 to 11 tokens.
NORMAL_TEXTS = [
    "A great film, wonderful acting!",
    "show me flights from Dallas to San Francisco on 12 May",
    "Talks between Spain and France",
]
# Parameters above this count are not a smoke model (a slow test, or a recipe ignored).
MAX_SMOKE_PARAMETERS = 50_000


@functools.cache
def smoke_model(name: str) -> keras.Model:
    """A tiny, untrained model of entry `name`, its preprocessor adapted to `SAMPLE_TEXTS`.

    Cached: callers must not change it (train, quantize or re-adapt a copy instead).
    """
    entry = get_entry(name)
    keras.utils.set_random_seed(1)
    model = zoo.build(name, **entry.smoke_config)
    preprocessor = getattr(model, "preprocessor", None)
    assert preprocessor is not None and hasattr(preprocessor, "adapt"), (
        f"Entry {name!r}: the contract suite needs model.preprocessor.adapt(texts) to give the "
        "untrained model a vocabulary without datasets."
    )
    preprocessor.adapt(SAMPLE_TEXTS)
    for key in ("vocabulary_size", "character_vocabulary_size"):
        adapted, table = getattr(preprocessor, key, None), getattr(model, key, None)
        if adapted is not None and table is not None and table < adapted:
            raise AssertionError(
                f"Entry {name!r}: the adapted {key} ({adapted}) outgrows the model's embedding "
                f"({table}): raise it in the entry's smoke_config or shorten SAMPLE_TEXTS."
            )
    return model
