"""Helpers shared by the test suites; the entry contract suite (tests/test_entry_contract.py)
runs every registered entry through them.

- `smoke`: a tiny model of any entry without datasets (`smoke_model`), and sample texts.
- `outputs`: comparisons of model outputs, served outputs and `predict_records` rows.
- `serving`: serving an exported SavedModel from a fresh process with TensorFlow alone, and
  the op types of a SavedModel's graph.
"""
