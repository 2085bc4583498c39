"""Backend smoke tests, each in a fresh interpreter (Keras fixes its backend at import)."""

import textwrap

import pytest

from tests.conftest import run_on_jax

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
    smoke = SMOKE.format(backend="jax", cell=cell, recurrent_dropout=recurrent_dropout)
    assert "(2, 2)" in run_on_jax(smoke)


EMA = textwrap.dedent("""
    import keras, numpy as np
    from zoo.train import SwapEMAWeights
    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 5), dtype="float32"), rng.random((32, 1), dtype="float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.5),
                  loss="mse")
    seen = []

    class Check(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            averages = [keras.ops.convert_to_numpy(v)
                        for v in model.optimizer._model_variables_moving_average]
            seen.append([w.copy() for w in model.get_weights()])
            logs["val_score"] = -float(np.square(model.predict_on_batch(x) - y).mean())
            # The averages are swapped in, the raw weights parked; after the last epoch
            # Keras finalizes both to the averages.
            swapped = not all(np.allclose(a, w) for a, w in zip(averages, seen[-1]))
            assert swapped == (epoch < 2)

    model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x, y),
              callbacks=[SwapEMAWeights(swap_on_epoch=True), Check(),
                         keras.callbacks.ModelCheckpoint("{path}", save_weights_only=True,
                                                         monitor="val_score", mode="max")])
    model.load_weights("{path}")
    assert all(np.allclose(a, b) for a, b in zip(model.get_weights(), seen[-1]))
    print("ok")
    """)


def test_weight_ema_swaps_and_checkpoints_on_jax(tmp_path):
    """Keras's own SwapEMAWeights loses the averages on JAX ("Array has been deleted")."""
    assert run_on_jax(EMA.format(path=tmp_path / "ema.weights.h5")).strip().endswith("ok")
