import keras
from keras import ops

OUTSIDE, BEGIN, INSIDE = 0, 1, 2


def tag_structure(tag_names) -> tuple[list[int], list[int]]:
    """Per tag id: its prefix (OUTSIDE / BEGIN / INSIDE) and its span type id (0 for "O").

    Raises:
        ValueError: a tag is neither "O" nor "B-<type>" / "I-<type>" (IOB2 or IOB1).
    """
    prefixes, types, type_ids = [], [], {}
    for name in tag_names:
        if name == "O":
            prefixes.append(OUTSIDE)
            types.append(0)
            continue
        prefix, separator, span_type = name.partition("-")
        if not separator or prefix not in ("B", "I") or not span_type:
            raise ValueError(
                f"Tag {name!r} is not in IOB format: expected 'O', 'B-<type>' or 'I-<type>'."
            )
        prefixes.append(BEGIN if prefix == "B" else INSIDE)
        types.append(type_ids.setdefault(span_type, len(type_ids) + 1))
    return prefixes, types


@keras.saving.register_keras_serializable(package="zoo")
class SpanF1(keras.metrics.Metric):
    """Exact-span (chunk) F1 of IOB tag sequences, computed in the graph on any backend.

    Spans are read from tags the way conlleval (and `seqeval`'s default mode) reads them: a
    span starts at a "B-" tag, or at an "I-" tag whose type differs from the previous tag's
    (so "I-" after "O" starts a span), and ends before a tag that does not continue it. A
    predicted span counts when a gold span has the same type, start and end. The result is the
    micro-averaged F1, 2·TP / (predicted spans + gold spans), equal to `seqeval.metrics.f1_score`
    on the same sentences. Padded steps (mask False) are read as "O".

    Args:
        tag_names: list of str. The tag of each tag id: "O", "B-<type>" or "I-<type>".

    Examples:
    >>> metric = SpanF1(["O", "B-PER", "I-PER"])
    >>> metric.update_state(gold_tag_ids, predicted_tag_ids, mask)
    >>> metric.result()
    """

    def __init__(self, tag_names, name="f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tag_names = list(tag_names)
        self.prefixes, self.types = tag_structure(self.tag_names)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.predicted_spans = self.add_variable(shape=(), initializer="zeros", name="predicted")
        self.gold_spans = self.add_variable(shape=(), initializer="zeros", name="gold")

    def _spans(self, tag_ids, mask):
        """Per step: does a span start here, does one end here, and the span type."""
        prefix = ops.take(ops.convert_to_tensor(self.prefixes, dtype="int32"), tag_ids)
        span_type = ops.take(ops.convert_to_tensor(self.types, dtype="int32"), tag_ids)
        prefix = ops.where(mask, prefix, OUTSIDE)
        span_type = ops.where(mask, span_type, 0)
        previous_type = ops.pad(span_type[:, :-1], [[0, 0], [1, 0]])
        next_prefix = ops.pad(prefix[:, 1:], [[0, 0], [0, 1]])
        next_type = ops.pad(span_type[:, 1:], [[0, 0], [0, 1]])
        inside = prefix != OUTSIDE
        # "I-" after "O" starts a span too: "O" has type 0, so the type changes.
        starts = inside & ((prefix == BEGIN) | (span_type != previous_type))
        ends = inside & ((next_prefix != INSIDE) | (next_type != span_type))
        return starts, ends, span_type

    def update_state(self, y_true, y_pred, mask=None, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        y_pred = ops.cast(y_pred, "int32")
        if mask is None:
            mask = ops.ones_like(y_true, dtype="bool")
        mask = ops.cast(mask, "bool")
        true_starts, true_ends, true_types = self._spans(y_true, mask)
        pred_starts, pred_ends, pred_types = self._spans(y_pred, mask)
        # Two spans that start at the same step with the same type are the same span when the
        # first step from there at which either of them ends is an end of both.
        length = ops.shape(y_true)[1]
        steps = ops.arange(length, dtype="int32")
        any_end = true_ends | pred_ends
        both_end = ops.cast(true_ends & pred_ends, "int32")
        end_steps = ops.where(any_end, steps[None, :], length)  # (batch, step)
        at_or_after = steps[None, :] >= steps[:, None]  # (start, step)
        first_end = ops.min(
            ops.where(at_or_after[None], end_steps[:, None, :], length), axis=-1
        )  # (batch, start)
        both_end = ops.pad(both_end, [[0, 0], [0, 1]])  # Index `length` means "no end".
        same_end = ops.take_along_axis(both_end, first_end, axis=1) > 0
        matched = true_starts & pred_starts & (true_types == pred_types) & same_end

        def count(flags):
            return ops.cast(ops.sum(ops.cast(flags, "int32")), self.dtype)

        self.true_positives.assign_add(count(matched))
        self.predicted_spans.assign_add(count(pred_starts))
        self.gold_spans.assign_add(count(true_starts))

    def result(self):
        total = self.predicted_spans + self.gold_spans
        return ops.where(total > 0, 2.0 * self.true_positives / ops.maximum(total, 1.0), 0.0)

    def reset_state(self):
        for variable in (self.true_positives, self.predicted_spans, self.gold_spans):
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        return {**super().get_config(), "tag_names": self.tag_names}
