"""The first run, as a newcomer sees it: a line naming backend, devices and run folder; epoch
bars with a total; no start-up chatter on stderr, while real warnings and errors still show."""

import importlib.util
import json
import re
import subprocess
import sys
import textwrap

import tensorflow as tf

from tests.conftest import REPO, TINY_SENTIMENT, subprocess_env, write_imdb_archive
from zoo.config import resolve_config
from zoo.registry import get_entry
from zoo.train import recorded_time, with_known_length

# What TensorFlow, absl, CUDA and Keras said before any line of the zoo's own (issue 22).
NOISE = (
    "absl::InitializeLog",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "oneDNN",
    "shuffle=True",
    "ran out of data",
)


def test_cli_train_says_backend_devices_and_run_folder_first_and_nothing_else(tmp_path):
    write_imdb_archive(tmp_path / "mirror" / "imdb")
    env = subprocess_env(
        KERAS_BACKEND="tensorflow",
        ZOO_DATA_MIRROR=str(tmp_path / "mirror"),
        ZOO_DATA_DIR=str(tmp_path / "tfds"),
        ZOO_VERIFY_CHECKSUMS="0",
    )
    del env["TF_CPP_MIN_LOG_LEVEL"]  # The entry point must quiet TensorFlow by itself.
    overrides = [f"--set={key}={value}" for key, value in TINY_SENTIMENT.items()]
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "zoo", "train", "sentiment", "--runs-dir", str(tmp_path / "runs")]
        + overrides,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith("Keras backend tensorflow; "), first
    assert "no GPU: training on" in first or "training on GPU: " in first, first
    assert f"run folder {tmp_path / 'runs' / 'sentiment'}" in first, first
    assert [line for line in NOISE if line in result.stderr] == [], result.stderr[-3000:]
    # The epoch bar knows its total from the first epoch on.
    assert "/Unknown" not in result.stdout and re.search(r"(\d+)/\1\b", result.stdout)
    # So do the phases outside fit: tokenizing (18 + 8 texts) and the test split (24).
    assert last_count(result.stdout, "Tokenizing the training and unlabeled text") == (26, 26)
    assert last_count(result.stdout, "Classifying the test split") == (24, 24)


def last_count(stdout: str, label: str) -> tuple[int, int]:
    """(done, total) where the bar under `label` ended: its redraws, one a line in text mode,
    are the lines after the label up to the next without a bar."""
    assert label in stdout, stdout[-3000:]
    counts = []
    for line in stdout.split(label, 1)[1].splitlines()[1:]:
        if line.strip() and "━" not in line:
            break
        counts += re.findall(r"(\d+)/(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
    done, total = counts[-1]
    return int(done), int(total)


def load_cli_module():
    """zoo/cli.py alone (stdlib imports only): no TensorFlow in the child that tests it."""
    spec = importlib.util.spec_from_file_location("zoo_cli_alone", REPO / "zoo" / "cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTERED = textwrap.dedent("""
    import importlib.util, os, sys, warnings
    spec = importlib.util.spec_from_file_location("cli", sys.argv[1])
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.quiet_startup()
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                b"written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796134458.034371    9191 port.cc:153] oneDNN custom operations "
                b"are on. You may see slightly different numerical results.\\n")
    os.write(2, b"E0000 00:00:1796134486.204174    9191 util.cc:131] oneDNN supports DT_BOOL "
                b"only on platforms with AVX-512. Falling back.\\n")
    os.write(2, b"E0000 00:00:1796134486.204174    9191 some_op.cc:7] a real error\\n")
    os.write(2, b"\\rprogress 50%")
    warnings.warn("a real warning")
    print("a traceback line", file=sys.stderr)
    """)


def test_quiet_startup_drops_known_chatter_and_passes_real_errors_warnings_and_bars():
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-c", FILTERED, str(REPO / "zoo" / "cli.py")],
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "InitializeLog" not in stderr and "oneDNN" not in stderr, stderr
    for line in ("a real error", "\rprogress 50%", "UserWarning: a real warning", "a traceback"):
        assert line in stderr, stderr


def test_cuda_lines_are_dropped_only_without_an_nvidia_driver():
    cli = load_cli_module()
    cuinit = (
        b"E0000 00:00:1796134467.248475    9191 cuda_platform.cc:52] failed call to cuInit: "
        b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
    )
    assert cli.is_startup_noise(cuinit, nvidia_driver=False)
    assert not cli.is_startup_noise(cuinit, nvidia_driver=True)
    assert not cli.is_startup_noise(b"E0000 00:00:1.0 1 cuda_platform.cc:52] other", False)


def test_training_data_knows_its_number_of_batches(imdb_fixture, tmp_path):
    entry = get_entry("sentiment")
    config = resolve_config(entry.config_class, TINY_SENTIMENT)
    model = entry.family.prepare_model(config, tmp_path)
    train, validation = entry.family.training_data(model, config)
    assert train.cardinality() == tf.data.UNKNOWN_CARDINALITY  # Bucketing loses it...
    for dataset in (train, validation):
        counted = with_known_length(dataset)  # ...and one pass restores it.
        assert int(counted.cardinality()) == sum(1 for _ in counted) == sum(1 for _ in counted)


def test_recorded_time_estimates_a_cpu_run_and_warns_of_a_gpu_one(tmp_path):
    config = resolve_config(get_entry("lm").config_class, {"epochs": 10})

    def note(device, seconds, epochs=5):
        training = {"device": device, "training_wall_seconds": seconds, "epochs_run": epochs}
        (tmp_path / "metrics.json").write_text(json.dumps({"training": training}))
        return recorded_time("lm", tmp_path, config)

    assert note("CPU: AMD EPYC x2", 600) is None  # Short on a CPU: nothing to say.
    assert note("CPU: AMD EPYC x2", 1620) == (
        "Recorded for saved_models/lm: 27 min on CPU: AMD EPYC x2 for 5 epochs (5 min an "
        "epoch); this run's 10 epochs (at most): about 54 min on a machine like that. "
        'A short run: make train-lm SET="epochs=1".'
    )
    gpu = note("NVIDIA H100 80GB HBM3 (jax)", 614)
    assert "10 min on NVIDIA H100" in gpu and "without a GPU expect many times that" in gpu
