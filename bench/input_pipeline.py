"""Is `make train-sentiment`'s tf.data pipeline a bottleneck? Training steps fed by it vs memory.

Builds the sentiment entry's model and training pipeline exactly as `zoo.train` does (the
entry's recipe; random embedding init to skip word2vec, which does not change the data path),
then measures, in one process:

- the pipeline alone: batches/s of a first pass (tokenizing; fills the cache) and a second one;
- training steps/s with batches drawn from the pipeline (cached, as from the second epoch on);
- training steps/s on the same batches held in memory (the ceiling the model allows).

A ratio pipeline-fed / memory-fed near 1 means the input pipeline is not the bottleneck.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import keras

from zoo.config import resolve_config
from zoo.registry import get_entry
from zoo.runtime import run_facts


def batches_per_second(dataset) -> tuple[float, int]:
    started, count = time.perf_counter(), 0
    for _ in dataset:
        count += 1
    return count / (time.perf_counter() - started), count


def steps_per_second(model, batches) -> float:
    started, count = time.perf_counter(), 0
    for x, y in batches:
        loss = model.train_on_batch(x, y)
        count += 1
    keras.ops.convert_to_numpy(loss)
    return count / (time.perf_counter() - started)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps timed per way")
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides, key=value")
    args = parser.parse_args(argv)

    entry = get_entry("sentiment")
    overrides = {"embedding_init": "random"}
    overrides.update(dict(item.split("=", 1) for item in args.set))
    config = resolve_config(entry.config_class, overrides)
    family = entry.family
    with tempfile.TemporaryDirectory() as run_dir:
        model = family.prepare_model(config, Path(run_dir))
    train, _ = family.training_data(model, config)
    family.compile(model, config)

    first_rate, count = batches_per_second(train)
    second_rate, _ = batches_per_second(train)
    batches = list(itertools.islice(train.as_numpy_iterator(), args.steps))
    steps_per_second(model, batches)  # compiles every bucket shape once
    memory = steps_per_second(model, batches)
    pipeline = steps_per_second(model, itertools.islice(train.as_numpy_iterator(), args.steps))

    facts = run_facts()
    print(f"# device: {facts['device']}; backend: {facts['backend']}; keras {facts['keras']}")
    print(
        f"# sentiment recipe: batch {config.batch_size}, {config.num_layers} x "
        f"{'Bi' if config.bidirectional else ''}{config.cell.upper()}-{config.units}, "
        f"{count} batches per epoch, {args.steps} timed training steps each way"
    )
    print(f"pipeline alone, first pass (tokenizing)   {first_rate:9.1f} batches/s")
    print(f"pipeline alone, cached pass               {second_rate:9.1f} batches/s")
    print(f"training steps fed by the pipeline        {pipeline:9.2f} steps/s")
    print(f"training steps fed from memory            {memory:9.2f} steps/s")
    print(f"ratio pipeline-fed / memory-fed           {pipeline / memory:9.2f}")
    return {"first": first_rate, "cached": second_rate, "pipeline": pipeline, "memory": memory}


if __name__ == "__main__":
    main()
