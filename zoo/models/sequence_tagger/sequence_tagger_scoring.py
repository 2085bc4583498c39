"""Token-level error analysis of a tagger's predictions (span F1 itself is seqeval's)."""

import collections


def tag_confusions(
    gold: list[list[str]], predicted: list[list[str]], limit: int = 40
) -> list[dict]:
    """Token-level errors: {"gold", "predicted", "count"} of the `limit` most confused pairs."""
    counts = collections.Counter(
        (gold_tag, predicted_tag)
        for gold_tags, predicted_tags in zip(gold, predicted)
        for gold_tag, predicted_tag in zip(gold_tags, predicted_tags)
        if gold_tag != predicted_tag
    )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"gold": g, "predicted": p, "count": count} for (g, p), count in ranked[:limit]]


def most_confused_tags(confusions: list[dict], limit: int) -> list[str]:
    """Up to `limit` tags that take part in the most token errors, "O" first when present."""
    errors = collections.Counter()
    for cell in confusions:
        errors[cell["gold"]] += cell["count"]
        errors[cell["predicted"]] += cell["count"]
    tags = [tag for tag, _ in sorted(errors.items(), key=lambda item: (-item[1], item[0]))]
    tags = tags[:limit]
    return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag))
