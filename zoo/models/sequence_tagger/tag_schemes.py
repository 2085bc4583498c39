"""Span tagging schemes: IOB2 (B- starts a span, I- continues it) and IOBES (E- ends a span of
two or more tokens, S- is a span of one).

Datasets are read in IOB2 and scores are counted on IOB2 spans; a tagger trained in IOBES
learns where spans end as well as where they start (Ratinov & Roth, 2009; Lample et al., 2016),
and maps its IOBES tags back to IOB2 one token at a time (E- -> I-, S- -> B-).
"""

from __future__ import annotations

import tensorflow as tf

TAG_SCHEMES = ("iob2", "iobes")


def span_types(tag_names) -> list[str]:
    """The span types of a tag set, in order of first appearance ("B-LOC" -> "LOC")."""
    types = []
    for tag in tag_names:
        if tag != "O" and tag[2:] not in types:
            types.append(tag[2:])
    return types


def iobes_tag_names(iob2_tag_names) -> list[str]:
    """IOBES tag set of an IOB2 one: "O", then B-, I-, E-, S- of every span type."""
    for tag in iob2_tag_names:
        if tag != "O" and not tag.startswith(("B-", "I-")):
            raise ValueError(f"Not an IOB2 tag: {tag!r}.")
    return ["O"] + [f"{p}-{t}" for t in span_types(iob2_tag_names) for p in "BIES"]


def iob2_tag_name(tag: str) -> str:
    """The IOB2 tag of one IOBES tag: E- -> I-, S- -> B-, others unchanged."""
    if tag.startswith("E-"):
        return "I-" + tag[2:]
    if tag.startswith("S-"):
        return "B-" + tag[2:]
    return tag


def iob2_to_iobes(tags: tf.Tensor) -> tf.Tensor:
    """IOB2 tags of one sequence (rank-1 tf.string) -> IOBES, in core TF ops.

    A B- or I- tag whose next token does not continue its span (an I- of the same type)
    ends the span: B- becomes S-, I- becomes E-.
    """
    tags = tf.convert_to_tensor(tags, dtype=tf.string)
    following = tf.concat([tags[1:], tf.constant(["O"])], axis=0)
    prefix = tf.strings.substr(tags, 0, 2)
    span_type = tf.strings.regex_replace(tags, r"^[BI]-", "")
    continued = tf.equal(tf.strings.substr(following, 0, 2), "I-") & tf.equal(
        tf.strings.regex_replace(following, r"^[BI]-", ""), span_type
    )
    single = tf.equal(prefix, "B-") & ~continued
    last = tf.equal(prefix, "I-") & ~continued
    return tf.where(single, "S-" + span_type, tf.where(last, "E-" + span_type, tags))
