"""Backend smoke tests, each in a fresh interpreter (Keras fixes its backend at import)."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import subprocess_env

SMOKE = textwrap.dedent("""
    import keras, numpy as np
    import zoo
    assert keras.backend.backend() == "{backend}"
    model = zoo.build("sentiment", vocabulary_size=20, embedding_dim=4, units=3, cell="{cell}",
                      num_layers=2, embedding_init="random",
                      recurrent_dropout={recurrent_dropout})
    model.compile(optimizer=keras.optimizers.Adam(clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.array([[2, 3, 4, 0], [5, 6, 0, 0]], dtype="int32")
    history = model.fit(ids, np.array([1, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.preprocessor.set_vocabulary(["good", "bad"])
    print(model.predict(["good film", ""], verbose=0).shape)
    """)


# The custom cells also run with recurrent dropout: their masks must be drawn outside the scan.
@pytest.mark.parametrize(
    "cell, recurrent_dropout",
    [("lstm", 0.0), ("gru", 0.0), ("jordan", 0.1), ("peephole_lstm", 0.1)],
)
def test_jax_backend_builds_and_trains_one_step(cell, recurrent_dropout):
    pytest.importorskip("jax")
    smoke = SMOKE.format(backend="jax", cell=cell, recurrent_dropout=recurrent_dropout)
    result = subprocess.run(
        [sys.executable, "-c", smoke],
        check=False,
        capture_output=True,
        text=True,
        env=subprocess_env(KERAS_BACKEND="jax"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2, 2)" in result.stdout
