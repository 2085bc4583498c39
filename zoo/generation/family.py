"""Family glue shared by the entries whose served graph decodes from the raw inputs (the
translator and the captioner): decoding traced without `Xla*` ops, an `attention` endpoint,
decoding in the graph or eagerly, and the best candidate's attention weights."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo.family import Family
from zoo.generation.decoding import slice_update_without_xla
from zoo.progress import progress


class DecodingFamily(Family):
    """A family whose `postprocess` decodes (beam search) from the raw inputs themselves, and
    whose `attention(model, inputs)` gives the best output's attention weights for plotting:
    both are exported, traced with core-TF `slice_update` (no Xla* op in the graph)."""

    def serving_function(self, model):
        serve = super().serving_function(model)

        def decode(inputs):
            # Decoding is traced with core-TF `slice_update`: no Xla* op in the graph.
            with slice_update_without_xla():
                return serve(inputs)

        return decode

    def served_outputs(self, model, text):
        return None  # `postprocess` decodes from the raw inputs itself.

    def attention(self, model, inputs) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    @staticmethod
    def decoding(model) -> str:
        """How a progress label names the model's decoding: "greedy" or "beam search of 5"."""
        return f"beam search of {model.num_beams}" if model.num_beams > 1 else "greedy"

    @staticmethod
    def generated(generate, inputs, batch_size: int, label: str, unit: str) -> list:
        """`generate(batch)` (a list of outputs) over `inputs` (a list or an array),
        `batch_size` at a time, with a progress bar of `unit`s under `label`."""
        starts = progress(
            range(0, len(inputs), batch_size),
            len(inputs),
            label,
            unit=unit,
            size=lambda start: min(batch_size, len(inputs) - start),
        )
        return [
            output for start in starts for output in generate(inputs[start : start + batch_size])
        ]

    def extra_endpoints(self, model) -> dict:
        """`attention`: raw inputs -> the best output's attention weights (see `attention`)."""

        def attention(inputs):
            with slice_update_without_xla():
                return self.attention(model, inputs)

        return {"attention": (attention, self.serving_signature())}


def decoded(decode, inputs) -> dict[str, tf.Tensor]:
    """`decode(inputs)` (a model's dict of decoded tensors) in the graph on the TensorFlow
    backend; on JAX or torch (eagerly: predict_records), NumPy across the boundary and the
    results back as TF tensors."""
    if keras.backend.backend() == "tensorflow":
        return decode(inputs)
    return {
        key: tf.constant(keras.ops.convert_to_numpy(value))
        for key, value in decode(np.asarray(inputs)).items()
    }


def best_attention(token_log_probs, source, token_ids, end_id: int):
    """The best candidate's tokens with the end token after its last one (what its last
    weights predict), (batch, time + 1), and their attention weights (batch, time + 1, memory
    time) float32, from decoded `token_ids` (batch, beams, time; 0 after each candidate) and a
    model's `token_log_probs(source, candidates, return_attention=True)`."""
    best = token_ids[:, 0]
    length = tf.reduce_sum(tf.cast(best > 0, tf.int32), axis=1)
    with_end = tf.where(
        tf.range(tf.shape(best)[1] + 1)[None, :] == length[:, None],
        end_id,
        tf.pad(best, [[0, 0], [0, 1]]),
    )
    _, weights = token_log_probs(source, with_end[:, None], return_attention=True)
    return with_end, tf.cast(weights[:, 0], tf.float32)


def sweep_decoding(score, widths, length_penalties, key) -> tuple[list[dict], dict]:
    """(every row, the best row) of a validation sweep of a decoding entry's report: each beam
    width at length penalty 1.0, then each length penalty at the best width above 1.
    `score(num_beams, length_penalty)` is a row (a dict holding its settings); `key(row)`
    ranks rows, best highest."""
    import json

    def scored(num_beams, length_penalty):
        row = score(num_beams, length_penalty)
        print(json.dumps(row), flush=True)
        return row

    rows = [scored(num_beams, 1.0) for num_beams in widths]
    best_width = max((row for row in rows if row["num_beams"] > 1), key=key)["num_beams"]
    rows += [scored(best_width, penalty) for penalty in length_penalties if penalty != 1.0]
    best = max(rows, key=key)
    print(
        f"Chosen on validation: beam {best['num_beams']}, length penalty "
        f"{best['length_penalty']}",
        flush=True,
    )
    return rows, best


def report_main(entry: str, report, doc: str, argv=None, score_setting=None) -> int:
    """The command line of a decoding entry's report module (`make report-<entry>`):
    `[MODEL_DIR] [--choose]`, calling `report(model_dir, choose)`; with `score_setting`, also
    `--setting BEAMS PENALTY`, which prints `score_setting(model_dir, beams, penalty)` (one
    setting's scores on the whole validation split) and writes nothing, to compare models at
    one decoding."""
    import argparse
    import json
    from pathlib import Path

    from zoo.registry import get_entry

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default=str(get_entry(entry).directory))
    parser.add_argument(
        "--choose", action="store_true", help="save the best validation setting on the model"
    )
    if score_setting is not None:
        parser.add_argument(
            "--setting",
            nargs=2,
            metavar=("BEAMS", "PENALTY"),
            help="only score this beam width and length penalty on the validation split",
        )
    args = parser.parse_args(argv)
    if getattr(args, "setting", None):
        beams, penalty = int(args.setting[0]), float(args.setting[1])
        print(json.dumps(score_setting(Path(args.model_dir), beams, penalty)), flush=True)
        return 0
    report(Path(args.model_dir), args.choose)
    return 0
