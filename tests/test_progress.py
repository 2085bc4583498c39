"""Progress bars with known totals for the long phases outside `fit`, and the training-time
estimate measured a few steps into the first epoch (issue 22)."""

import re

import numpy as np
import pytest
import tensorflow as tf

from zoo.progress import dataset_size, progress
from zoo.train import StepTimeEstimate
from zoo.vocabulary import word2vec_matrix


def bars(text: str) -> list[str]:
    """The "done/total" counts a Keras bar drew, its colour codes left out."""
    return re.findall(r"\d+/\d+", re.sub(r"\x1b\[[0-9;]*m", "", text))


def test_progress_yields_every_item_under_its_label_and_ends_at_the_total(capsys):
    assert list(progress(iter(range(5)), 5, "Doing five things...", unit="thing")) == [*range(5)]
    out = capsys.readouterr().out
    assert out.startswith("Doing five things...\n") and out.endswith("\n"), out
    assert bars(out)[0] == "0/5" and bars(out)[-1] == "5/5", out  # The total shows at once.
    assert "thing" in out


def test_progress_counts_examples_of_batches_and_ends_its_line_short_of_the_total(capsys):
    batches = [[1, 2, 3], [4, 5], [6]]
    assert list(progress(batches, 10, "Batches...", unit="text", size=len)) == batches
    out = capsys.readouterr().out
    assert bars(out)[-1] == "6/10" and out.endswith("\n"), out


def test_progress_is_silent_with_zoo_verbose_0(capsys, monkeypatch):
    monkeypatch.setenv("ZOO_VERBOSE", "0")
    assert list(progress(range(3), 3, "Quiet...")) == [0, 1, 2]
    assert capsys.readouterr().out == ""


def test_dataset_size_is_known_only_where_tf_data_knows_it():
    dataset = tf.data.Dataset.range(10)
    assert dataset_size(dataset) == 10 and dataset_size(dataset.batch(4)) == 3
    assert dataset_size(dataset.filter(lambda value: value > 2)) is None


def test_word2vec_shows_a_bar_over_its_epochs(capsys):
    sentences = [["a", "good", "film"], ["a", "bad", "film"]] * 20
    matrix = word2vec_matrix(sentences, ["a", "film"], dim=4, epochs=3, workers=1)
    assert matrix.shape == (4, 4)
    out = capsys.readouterr().out
    assert "Training word2vec (CBOW, 4 dimensions) on 40 texts, 3 epochs" in out, out
    assert bars(out)[0] == "0/3" and bars(out)[-1] == "3/3", out


def run_estimate(steps, epochs, seconds_per_step, batches=40, first_epoch=0, **kwargs):
    """The callback over `batches` steps of a fit whose steps take `seconds_per_step` each
    (a fake clock read once per step)."""
    times = iter(np.arange(1000) * seconds_per_step)
    callback = StepTimeEstimate(clock=lambda: float(next(times)), **kwargs)
    callback.set_params({"steps": steps, "epochs": epochs, "verbose": 1})
    for epoch in range(first_epoch, first_epoch + 2):
        callback.on_epoch_begin(epoch)
        for batch in range(batches):
            callback.on_train_batch_end(batch)
    return callback


def test_the_estimate_is_said_once_from_the_steps_after_compiling(capsys):
    run_estimate(steps=350, epochs=12, seconds_per_step=0.92, early_stopping=True)
    out = capsys.readouterr().out
    assert out == (
        "\nMeasured 0.92 s/step (median of 15 steps): about 5 min an epoch of 350 steps (its "
        "validation not counted), about 64 min for 12 epochs (early stopping may end it "
        "sooner).\n"
    )


def test_slow_steps_are_timed_for_a_minute_and_a_resumed_run_counts_its_epochs_left(capsys):
    run_estimate(steps=100, epochs=10, seconds_per_step=8.0, first_epoch=6)
    out = capsys.readouterr().out
    assert out.count("Measured") == 1, out
    assert "Measured 8 s/step (median of 8 steps): about 13 min an epoch of 100 steps" in out
    assert "about 53 min for the 4 epochs left." in out, out


def test_the_estimate_leaves_out_the_slow_steps_that_compile_new_batch_shapes(capsys):
    # Steps of 0.1 s, but 4 of the 15 timed take 10 s more (a new bucket's shape compiles).
    slow = {5, 6, 9, 14}
    times = np.cumsum([0.0] + [0.1 + 10.0 * (step in slow) for step in range(40)])
    callback = StepTimeEstimate(clock=iter(times.tolist()).__next__)
    callback.set_params({"steps": 600, "epochs": 2, "verbose": 1})
    callback.on_epoch_begin(0)
    for batch in range(40):
        callback.on_train_batch_end(batch)
    out = capsys.readouterr().out
    assert "Measured 0.1 s/step (median of" in out and "about 60 s an epoch" in out, out


@pytest.mark.parametrize("steps, verbose", [(None, "1"), (350, "0")])
def test_no_estimate_without_a_step_count_or_with_zoo_verbose_0(
    steps, verbose, capsys, monkeypatch
):
    monkeypatch.setenv("ZOO_VERBOSE", verbose)
    run_estimate(steps=steps, epochs=12, seconds_per_step=1.0)
    assert capsys.readouterr().out == ""
