"""Comparisons of model outputs, served outputs and `predict_records` rows, for any family.

Outputs are an array or a (nested) dict of arrays with the batch on axis 0; per-step outputs
have time on axis 1, right-padded, and different paths may pad to different lengths.
"""

from __future__ import annotations

import json
import math

import numpy as np
import tensorflow as tf

# Served and predicted floats agree to this (float32 through different kernels and paddings).
ATOL = 1e-5


def leaves(outputs) -> dict[str, np.ndarray]:
    """{path: array} of an array, a tensor or a nested dict of them ("" for a single one)."""
    if isinstance(outputs, dict):
        return {
            f"{key}/{path}".rstrip("/"): value
            for key in sorted(outputs)
            for path, value in leaves(outputs[key]).items()
        }
    if isinstance(outputs, (tf.Tensor, tf.RaggedTensor)):
        outputs = outputs.numpy() if isinstance(outputs, tf.Tensor) else outputs.to_list()
    return {"": np.asarray(outputs)}


def assert_identical(actual, expected) -> None:
    """Same structure, shapes, dtypes and values, bit for bit."""
    actual, expected = leaves(actual), leaves(expected)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert actual[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def assert_close_on_common_steps(actual, expected, atol: float = ATOL) -> None:
    """Same structure and values; where the time axis (1) differs, on the shorter one's steps.

    `expected` should be the least padded: steps past it are padding in `actual`, whose values
    (e.g. tag scores of padded steps) are not outputs.
    """
    actual, expected = leaves(actual), leaves(expected)
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        if got.shape != want.shape:
            assert got.ndim == want.ndim >= 2, (key, got.shape, want.shape)
            assert got.shape[0] == want.shape[0] and got.shape[2:] == want.shape[2:], key
            steps = min(got.shape[1], want.shape[1])
            got, want = got[:, :steps], want[:, :steps]
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, atol=atol, rtol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)


def assert_defined_answer(outputs, rows: int) -> None:
    """One row per input in every output, and finite numbers."""
    for key, value in leaves(outputs).items():
        assert value.shape[:1] == (rows,), (key, value.shape, rows)
        if value.dtype.kind in "fc":
            assert np.all(np.isfinite(value)), key


def assert_json_records(records, rows: int) -> None:
    """`predict_records`' answer: one dict per input, JSON-ready, with finite numbers."""
    assert isinstance(records, list) and len(records) == rows, records
    assert all(isinstance(record, dict) and record for record in records), records
    json.dumps(records, allow_nan=False)


def assert_probabilities(outputs: dict) -> None:
    """Every output named like a probability lies in [0, 1] (floats must not round above 1)."""
    for key, value in outputs.items():
        if "probabilit" in key:
            flat = np.asarray(value, dtype="float64").ravel()
            assert np.all((flat >= 0.0) & (flat <= 1.0)), (key, flat.min(), flat.max())


def _is_padding(value) -> bool:
    return value in ("", b"", 0, 0.0) or (isinstance(value, list) and all(map(_is_padding, value)))


def _assert_same(actual, expected, where: str) -> None:
    if isinstance(expected, list):
        assert isinstance(actual, list), (where, actual, expected)
        assert len(actual) >= len(expected), (where, actual, expected)
        for index, item in enumerate(expected):
            _assert_same(actual[index], item, f"{where}[{index}]")
        # A served batch is right-padded to its longest row: the rest of the row is padding.
        assert all(_is_padding(item) for item in actual[len(expected) :]), (where, actual)
    elif isinstance(expected, float) or isinstance(actual, float):
        assert math.isclose(actual, expected, rel_tol=ATOL, abs_tol=ATOL), (where, actual, expected)
    else:
        assert actual == expected, (where, actual, expected)


def assert_served_like_records(served: dict[str, list], records: list[dict]) -> None:
    """Each `predict_records` field equals the served output of the same name, row by row
    (served per-step rows may be longer: the rest is padding)."""
    for key in records[0] if records else []:
        assert (
            key in served
        ), f"predict_records gives {key!r}, the server does not: {sorted(served)}"
    for row, record in enumerate(records):
        for key, expected in record.items():
            _assert_same(served[key][row], expected, f"row {row} {key!r}")
