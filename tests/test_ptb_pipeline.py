"""The PTB builder: upstream layout in a tiny mirror, the real split sizes, the text cleaning."""

import pytest
import tensorflow as tf

from pipelines import mirror
from pipelines.ptb import Ptb, as_running_text, load_ptb
from tests.conftest import requires_mirror, write_ptb_mirror


@pytest.fixture
def ptb_mirror(tmp_path, monkeypatch):
    write_ptb_mirror(tmp_path / "mirror")
    monkeypatch.setenv("ZOO_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "tfds"))


@pytest.mark.usefixtures("ptb_mirror")
def test_builder_reads_the_upstream_files_in_order():
    sizes = {name: split.num_examples for name, split in mirror.prepare(Ptb).info.splits.items()}
    assert sizes == {"train": 2, "validation": 1, "test": 3}
    test = [text.decode() for text in load_ptb("test").as_numpy_iterator()]
    assert test == ["no it was n't black monday", "but", "nobody knew"]


@pytest.mark.usefixtures("ptb_mirror")
def test_running_text_drops_unk_and_writes_numbers_as_digits():
    text = [t.decode() for t in as_running_text(load_ptb("train")).as_numpy_iterator()]
    assert text == ["the rose 0 % to $ 0 million", "sold 0 shares"]
    # Words that merely contain "N" or "<unk>" are kept as they are.
    kept = as_running_text(tf.data.Dataset.from_tensor_slices(["Nov. N <unk>s n"]))
    assert [t.decode() for t in kept.as_numpy_iterator()] == ["Nov. 0 <unk>s n"]


@pytest.mark.real_data
@requires_mirror
def test_real_split_sizes():
    sizes = {name: split.num_examples for name, split in mirror.prepare(Ptb).info.splits.items()}
    assert sizes == {"train": 42068, "validation": 3370, "test": 3761}
    words = sum(len(text.split()) for text in load_ptb("train").as_numpy_iterator())
    assert words == 887521
