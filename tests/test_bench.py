"""`make bench`'s two programs run end to end on tiny settings (the numbers mean nothing here)."""

import math

from bench import input_pipeline, rnn_layers


def test_rnn_layer_matrix_covers_every_configuration():
    rows = rnn_layers.main(
        [
            "--batch-sizes",
            "2",
            "--lengths",
            "5",
            "--units",
            "3",
            "--embedding-dim",
            "4",
            "--vocabulary-size",
            "30",
            "--num-layers",
            "1",
            "--warmup",
            "1",
            "--steps",
            "1",
        ]
    )
    # LSTM: 2 directions x 2 maskings x 2 implementations; GRU: 2 x 2 x the Keras layers.
    assert len(rows) == 8 + 4
    assert {(row["cell"], row["implementation"]) for row in rows} == {
        ("lstm", "auto"),
        ("lstm", "keras"),
        ("gru", "keras"),
    }
    assert all(row["zoo"] > 0 for row in rows)
    # On the TensorFlow backend "auto" runs the Keras layers: the two agree exactly.
    assert all(row["gap"] == 0.0 for row in rows if row["implementation"] == "auto")
    assert all(math.isnan(row["gap"]) for row in rows if row["implementation"] == "keras")


def test_synthetic_batches_are_right_padded_when_masked():
    token_ids, labels, lengths = rnn_layers.synthetic_batch(6, 10, 50, masked=True)
    assert ((token_ids != 0).sum(axis=1) == lengths).all() and labels.shape == (6,)
    token_ids, _, lengths = rnn_layers.synthetic_batch(6, 10, 50, masked=False)
    assert (token_ids != 0).all() and (lengths == 10).all()


def test_input_pipeline_bench_feeds_the_real_training_pipeline(imdb_fixture):
    result = input_pipeline.main(
        [
            "--steps",
            "2",
            "--set",
            "batch_size=4",
            "units=3",
            "embedding_dim=4",
            "vocabulary_size=40",
            "num_layers=1",
            "sequence_length=16",
            "bucket_step=8",
        ]
    )
    assert all(value > 0 for value in result.values())
