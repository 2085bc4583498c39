"""The committed pretrained sentiment model: loads everywhere it should, and is accurate."""

import itertools
import json

import keras
import numpy as np
import pytest

import zoo
from tests.conftest import requires_mirror
from zoo.api import model_path

pytestmark = [
    pytest.mark.pretrained,
    pytest.mark.skipif(
        not model_path("sentiment").exists(), reason="no pretrained sentiment model"
    ),
]


def test_pretrained_model_loads_with_plain_keras_after_import_zoo():
    model = keras.saving.load_model(model_path("sentiment"))
    logits = model.predict(
        ["A wonderful, moving film.", "Dull, boring and far too long."], verbose=0
    )
    assert logits.shape == (2, 2)
    assert np.argmax(logits, axis=-1).tolist() == [1, 0]


def test_metrics_json_records_the_full_test_split():
    metrics = json.loads((model_path("sentiment").parent / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 25_000
    assert metrics["metric"] == "accuracy" and 0.5 < metrics["value"] <= 1.0
    assert metrics["training"]["training_wall_seconds"] > 0 and metrics["config"]["cell"]


@pytest.mark.real_data
@requires_mirror
def test_pretrained_accuracy_on_the_first_2000_test_reviews():
    from pipelines.imdb import load_imdb

    reviews = list(itertools.islice(load_imdb("test").as_numpy_iterator(), 2000))
    texts = [text for text, _ in reviews]
    labels = np.array([label for _, label in reviews])
    predictions = np.argmax(zoo.load("sentiment").predict(texts, verbose=0), axis=-1)
    accuracy = float(np.mean(predictions == labels))
    assert accuracy >= 0.89, accuracy
