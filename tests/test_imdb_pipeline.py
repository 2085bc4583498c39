import pytest
import tensorflow as tf

from pipelines import mirror
from pipelines.imdb import AclImdb, load_imdb
from pipelines.transforms import bucket_by_length
from tests.conftest import NEGATIVE, POSITIVE, requires_mirror


def test_builder_reads_the_upstream_layout(imdb_fixture):
    builder = mirror.prepare(AclImdb)
    sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
    assert sizes == {"train": 24, "test": 24, "unsupervised": 8}
    texts = {t.decode() for t, _ in load_imdb("test").as_numpy_iterator()}
    assert texts == set(POSITIVE + NEGATIVE)
    labels = [int(label) for _, label in load_imdb("train").as_numpy_iterator()]
    assert sorted(labels) == [0] * 12 + [1] * 12


def test_missing_mirror_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist.*upstream names"):
        mirror.mirror_file("imdb", "aclImdb_v1.tar.gz")


def test_bucket_by_length_pads_to_boundaries_and_keeps_every_example():
    lengths = [1, 3, 5, 9, 15, 16, 2, 7]
    dataset = tf.data.Dataset.from_generator(
        lambda: ((tf.ones([n], tf.int32), n) for n in lengths),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)),
    )
    seen = []
    for features, labels in bucket_by_length(dataset, batch_size=2, max_length=16, step=4):
        assert features.shape[1] in (4, 8, 12, 16)
        for row, n in zip(features.numpy(), labels.numpy()):
            assert row[:n].sum() == n and row[n:].sum() == 0
            seen.append(int(n))
    assert sorted(seen) == sorted(lengths)


@pytest.mark.real_data
@requires_mirror
def test_real_imdb_split_sizes():
    builder = mirror.prepare(AclImdb)
    sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
    assert sizes == {"train": 25_000, "test": 25_000, "unsupervised": 50_000}
    labels = [int(label) for _, label in load_imdb("test").as_numpy_iterator()]
    assert sum(labels) == 12_500
