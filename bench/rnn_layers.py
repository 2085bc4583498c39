"""Training throughput of the zoo's recurrent layers against raw PyTorch cuDNN, per configuration.

For every combination of cell (LSTM, GRU), direction (uni-, bidirectional), batch size, length
and masking (right-padded batches with a padding mask, or full-length batches without one), one
process times one optimizer step of the same model written twice:

- zoo: `Embedding(mask_zero=masked)` -> `RecurrentStack(cell, units, num_layers, ...)` (final
  state) -> `Dense(2)`, Adam, on the active Keras backend; LSTMs once per `RecurrentStack`
  implementation asked for ("auto": fused cuDNN on JAX GPUs; "keras": the Keras layers);
- reference: `nn.Embedding` -> `nn.LSTM` / `nn.GRU` (cuDNN on a GPU; packed sequences when
  masked) -> final hidden state -> `nn.Linear`, Adam, in PyTorch.

It prints samples/s of each and their ratio. Absolute numbers hold only for the machine they
ran on; the ratio, measured in the same process, is what to compare. Before timing, the fused
and Keras implementations' outputs are compared on the same weights (the largest difference is
printed), so a fast but wrong kernel shows up in the table.
"""

from __future__ import annotations

import argparse
import itertools
import time

import keras
import numpy as np

from zoo.layers.recurrent_stack import RecurrentStack
from zoo.runtime import run_facts


def synthetic_batch(batch_size, length, vocabulary_size, masked, seed=0):
    """Token ids (right-padded with 0 when `masked`), labels and lengths."""
    rng = np.random.default_rng(seed)
    if masked:
        lengths = rng.integers(length // 4, length + 1, size=batch_size)
    else:
        lengths = np.full(batch_size, length)
    token_ids = rng.integers(1, vocabulary_size, size=(batch_size, length)).astype("int32")
    token_ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return token_ids, rng.integers(0, 2, size=batch_size).astype("int32"), lengths


def time_steps(step, warmup, steps) -> float:
    """Seconds for `steps` calls of `step` after `warmup` untimed ones (compilation)."""
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def zoo_model(setting, implementation) -> keras.Model:
    keras.utils.set_random_seed(0)
    token_ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(
        setting["vocabulary_size"], setting["embedding_dim"], mask_zero=setting["masked"]
    )(token_ids)
    state = RecurrentStack(
        cell=setting["cell"],
        units=setting["units"],
        num_layers=setting["num_layers"],
        bidirectional=setting["bidirectional"],
        return_sequences=False,
        implementation=implementation,
        name="stack",
    )(embedded)
    model = keras.Model(token_ids, keras.layers.Dense(2)(state))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def zoo_samples_per_second(setting, implementation, token_ids, labels, warmup, steps) -> float:
    model = zoo_model(setting, implementation)

    def step():
        keras.ops.convert_to_numpy(model.train_on_batch(token_ids, labels))

    return len(token_ids) * steps / time_steps(step, warmup, steps)


def implementation_gap(setting, token_ids) -> float:
    """Largest |fused - Keras| output on the same weights (inference), or nan if not fused."""
    fused, generic = zoo_model(setting, "auto"), zoo_model(setting, "keras")
    generic.set_weights(fused.get_weights())
    outputs = [keras.ops.convert_to_numpy(model(token_ids)) for model in (fused, generic)]
    return float(np.abs(outputs[0] - outputs[1]).max())


def torch_samples_per_second(setting, token_ids, labels, lengths, warmup, steps):
    """Raw PyTorch samples/s for the same model, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rnn_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[setting["cell"]]
    directions = 2 if setting["bidirectional"] else 1

    class Reference(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(
                setting["vocabulary_size"], setting["embedding_dim"], padding_idx=0
            )
            self.rnn = rnn_class(
                setting["embedding_dim"],
                setting["units"],
                num_layers=setting["num_layers"],
                batch_first=True,
                bidirectional=setting["bidirectional"],
            )
            self.logits = torch.nn.Linear(directions * setting["units"], 2)

        def forward(self, ids, lengths):
            embedded = self.embedding(ids)
            if setting["masked"]:
                embedded = torch.nn.utils.rnn.pack_padded_sequence(
                    embedded, lengths, batch_first=True, enforce_sorted=False
                )
            _, hidden = self.rnn(embedded)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c)
            last = hidden[-directions:].transpose(0, 1).reshape(len(lengths), -1)
            return self.logits(last)

    torch.manual_seed(0)
    model = Reference().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=device)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)
    cpu_lengths = torch.as_tensor(lengths, dtype=torch.long)  # pack_padded wants them on CPU

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(ids, cpu_lengths), targets)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return len(token_ids) * steps / time_steps(step, warmup, steps)


def settings(args):
    for cell, bidirectional, batch_size, length, masked in itertools.product(
        args.cells, args.directions, args.batch_sizes, args.lengths, args.masking
    ):
        yield {
            "cell": cell,
            "bidirectional": bidirectional == "bi",
            "batch_size": batch_size,
            "length": length,
            "masked": masked == "masked",
            "units": args.units,
            "num_layers": args.num_layers,
            "embedding_dim": args.embedding_dim,
            "vocabulary_size": args.vocabulary_size,
        }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--directions", nargs="+", default=["bi", "uni"], choices=["uni", "bi"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 32])
    parser.add_argument("--lengths", nargs="+", type=int, default=[256, 64])
    parser.add_argument(
        "--masking", nargs="+", default=["masked", "unmasked"], choices=["masked", "unmasked"]
    )
    parser.add_argument(
        "--implementations", nargs="+", default=["auto", "keras"], choices=["auto", "keras"]
    )
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--vocabulary-size", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    facts = run_facts()
    print(f"# device: {facts['device']}; backend: {facts['backend']}; keras {facts['keras']}")
    print(
        f"# model: embedding {args.embedding_dim} (vocabulary {args.vocabulary_size}) -> "
        f"{args.num_layers} x RNN-{args.units} -> final state -> dense 2; one Adam step; "
        f"{args.steps} timed steps after {args.warmup}"
    )
    header = (
        f"{'cell':5s} {'dir':3s} {'batch':>5s} {'len':>4s} {'mask':8s} {'zoo impl':8s} "
        f"{'zoo/s':>9s} {'torch/s':>9s} {'ratio':>6s} {'|fused-keras|':>13s}"
    )
    print(header)
    rows = []
    for setting in settings(args):
        token_ids, labels, lengths = synthetic_batch(
            setting["batch_size"], setting["length"], setting["vocabulary_size"], setting["masked"]
        )
        reference = torch_samples_per_second(
            setting, token_ids, labels, lengths, args.warmup, args.steps
        )
        implementations = args.implementations if setting["cell"] == "lstm" else ["keras"]
        for implementation in implementations:
            rate = zoo_samples_per_second(
                setting, implementation, token_ids, labels, args.warmup, args.steps
            )
            gap = (
                implementation_gap(setting, token_ids[:8])
                if implementation == "auto" and setting["cell"] == "lstm"
                else float("nan")
            )
            row = {**setting, "implementation": implementation, "zoo": rate, "torch": reference}
            row["ratio"] = rate / reference if reference else None
            row["gap"] = gap
            rows.append(row)
            print(
                f"{setting['cell']:5s} {'bi' if setting['bidirectional'] else 'uni':3s} "
                f"{setting['batch_size']:5d} {setting['length']:4d} "
                f"{'masked' if setting['masked'] else 'full':8s} {implementation:8s} "
                f"{rate:9.1f} "
                + (f"{reference:9.1f} {row['ratio']:6.2f}" if reference else f"{'n/a':>9s} {'':6s}")
                + f" {gap:13.2e}",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
