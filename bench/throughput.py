"""Training throughput of the sentiment model against raw PyTorch in the same process.

`make bench` (BACKEND=jax|tensorflow|torch) prints samples/s of one optimizer step of the zoo's
sentiment architecture on synthetic right-padded batches, and of the same architecture written
directly in PyTorch (nn.Embedding + bidirectional nn.LSTM / nn.GRU, cuDNN on a GPU), with the
ratio. Absolute numbers hold only for the machine they ran on; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

import zoo
from zoo.runtime import run_facts


def synthetic_batch(batch_size, length, vocabulary_size, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length // 2, length + 1, size=batch_size)
    token_ids = rng.integers(2, vocabulary_size, size=(batch_size, length)).astype("int32")
    token_ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # right padding
    return token_ids, rng.integers(0, 2, size=batch_size), lengths


def time_steps(step, warmup, steps) -> float:
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def zoo_samples_per_second(args, token_ids, labels) -> float:
    model = zoo.build(
        "sentiment", cell=args.cell, units=args.units, embedding_dim=args.embedding_dim,
        vocabulary_size=args.vocabulary_size, num_layers=args.num_layers, embedding_init="random",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def step():
        keras.ops.convert_to_numpy(model.train_on_batch(token_ids, labels))

    return args.batch_size * args.steps / time_steps(step, args.warmup, args.steps)


def torch_samples_per_second(args, token_ids, labels) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rnn_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(args.cell)
    if rnn_class is None:
        return None

    class Reference(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(args.vocabulary_size, args.embedding_dim, 0)
            self.rnn = rnn_class(args.embedding_dim, args.units, num_layers=args.num_layers,
                                 batch_first=True, bidirectional=True)
            self.logits = torch.nn.Linear(4 * args.units, 2)

        def forward(self, ids):
            mask = (ids > 0).unsqueeze(-1).float()
            outputs, _ = self.rnn(self.embedding(ids))
            pooled_max = (outputs - 1e9 * (1 - mask)).max(dim=1).values
            pooled_mean = (outputs * mask).sum(1) / mask.sum(1).clamp(min=1)
            return self.logits(torch.cat([pooled_max, pooled_mean], -1))

    model = Reference().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=device)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(ids), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return args.batch_size * args.steps / time_steps(step, args.warmup, args.steps)


def main(argv=None) -> None:
    from zoo.text_classification import TextClassificationConfig

    recipe = TextClassificationConfig()  # Defaults: the pretrained sentiment model's recipe.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default=recipe.cell, choices=["lstm", "gru"])
    parser.add_argument("--units", type=int, default=recipe.units)
    parser.add_argument("--num-layers", type=int, default=recipe.num_layers)
    parser.add_argument("--embedding-dim", type=int, default=recipe.embedding_dim)
    parser.add_argument("--vocabulary-size", type=int, default=recipe.vocabulary_size)
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)

    token_ids, labels, _ = synthetic_batch(args.batch_size, args.length, args.vocabulary_size)
    facts = run_facts()
    print(f"device: {facts['device']}  backend: {facts['backend']}  keras {facts['keras']}")
    print(f"model: BiGRU/BiLSTM sentiment, cell={args.cell} units={args.units} "
          f"layers={args.num_layers} emb={args.embedding_dim} batch={args.batch_size} "
          f"length={args.length} (right-padded, masked)")
    zoo_rate = zoo_samples_per_second(args, token_ids, labels)
    torch_rate = torch_samples_per_second(args, token_ids, labels)
    print(f"{'zoo (keras ' + facts['backend'] + ')':32s} {zoo_rate:10.1f} samples/s")
    if torch_rate is None:
        print(f"{'reference (raw PyTorch)':32s} {'skipped: torch not installed':>10s}")
    else:
        print(f"{'reference (raw PyTorch)':32s} {torch_rate:10.1f} samples/s")
        print(f"{'ratio zoo / reference':32s} {zoo_rate / torch_rate:10.2f}")


if __name__ == "__main__":
    main()
