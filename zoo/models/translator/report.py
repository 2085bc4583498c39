"""Decoding settings and the card's measurements for a trained translator.

`python -m zoo.models.translator.report [MODEL_DIR]` (`make report-nmt`):

1. scores beam widths and length penalties on the whole validation split (sacreBLEU), with
   each setting's decoding speed (sentences per second on this machine);
2. sets the best setting on the model (`num_beams`, `length_penalty`: decoding only, the
   weights are untouched) and saves it, when `--choose` is given;
3. translates the test split with greedy decoding and with the chosen beam (the BLEU-vs-beam
   table's test column; the settings were chosen on validation only);
4. draws attention heatmaps of test pairs and lists the best and worst test translations
   (sentence BLEU) and translations of the inputs people send (lower case, capitals, unseen
   names, long and empty sentences).

Writes `decoding.json` and `attention_*.png` to the model folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import sacrebleu

import zoo  # noqa: F401  (registers the entries)
from zoo.generation.family import report_main, sweep_decoding
from zoo.models.translator.translator import DECODE_PAD_MULTIPLE
from zoo.models.translator.translator_family import bleu_scores
from zoo.models.translator.translator_preprocessor import END_ID
from zoo.registry import get_entry
from zoo.runtime import run_facts
from zoo.task import pad_to_multiple

BEAM_WIDTHS = (1, 3, 5, 10)
LENGTH_PENALTIES = (0.0, 0.5, 1.0, 1.5)
BATCH_SIZE = 128
# What users send besides test sentences: casing, unseen names, a long and an empty input.
PROBES = [
    "Ein Mann fährt Fahrrad.",
    "ein mann fährt fahrrad.",
    "EIN MANN FÄHRT FAHRRAD.",
    "Frau Schmidtke und Herr Okonkwo gehen mit ihrem Hund Bello in Wuppertal spazieren.",
    (
        "Zwei Kinder spielen im Sand am Strand, während ihre Eltern unter einem großen "
        "Sonnenschirm sitzen und ein Mann mit einer roten Mütze im Hintergrund ein Boot "
        "repariert, das am Ufer liegt."
    ),
    "",
    "The quick brown fox jumps over the lazy dog.",
]


def timed_scores(model, sources, references, num_beams, length_penalty):
    started = time.time()
    hypotheses = model.generate(
        sources, num_beams=num_beams, length_penalty=length_penalty, batch_size=BATCH_SIZE
    )
    seconds = time.time() - started
    return hypotheses, {
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        **bleu_scores(hypotheses, references),
        "sentences_per_second": round(len(sources) / seconds, 1),
    }


def attention_figure(model, source: str, reference: str, path: Path) -> str:
    """A heatmap of the best translation's attention over the source subwords."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    preprocessor = model.preprocessor
    ids = pad_to_multiple(preprocessor(tf.constant([source]))["source_ids"], DECODE_PAD_MULTIPLE)
    ids = ids.numpy()
    best = keras.ops.convert_to_numpy(model.translate_ids(ids)["token_ids"])[:, :1]
    length = int(np.sum(best[0, 0] > 0))
    target = np.zeros_like(best)
    target[0, 0, :length] = best[0, 0, :length]
    if length < target.shape[-1]:
        target[0, 0, length] = END_ID
    _, weights = model.token_log_probs(ids, target, return_attention=True)
    weights = keras.ops.convert_to_numpy(weights)[0, 0]
    source_vocabulary = preprocessor.source_tokenizer.get_vocabulary()
    target_vocabulary = preprocessor.target_tokenizer.get_vocabulary()
    source_pieces = [source_vocabulary[i] for i in ids[0] if i > 0]
    target_pieces = [target_vocabulary[i] for i in target[0, 0] if i > 0]
    weights = weights[: len(target_pieces), : len(source_pieces)]
    translation = preprocessor.detokenize(tf.constant(best[:, 0])).numpy()[0].decode("utf-8")
    figure, axis = plt.subplots(
        figsize=(0.45 * len(source_pieces) + 2.5, 0.4 * len(target_pieces) + 2)
    )
    axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(source_pieces)), source_pieces, rotation=90)
    axis.set_yticks(range(len(target_pieces)), target_pieces)
    axis.set_title(f"{translation}\n(reference: {reference})", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return translation


def report(model_dir: Path, choose: bool) -> dict:
    entry = get_entry("nmt")
    family = entry.family
    model_path = model_dir / "model.keras"
    model = keras.saving.load_model(model_path, compile=False)
    results = {"model": str(model_path), "facts": run_facts(), "validation": []}

    sources, references = family.references("validation")
    print(f"Validation: {len(sources)} pairs", flush=True)
    results["validation"], best = sweep_decoding(
        lambda beams, penalty: timed_scores(model, sources, references, beams, penalty)[1],
        BEAM_WIDTHS,
        LENGTH_PENALTIES,
        key=lambda row: row["bleu"],
    )
    results["chosen"] = {key: best[key] for key in ("num_beams", "length_penalty")}
    if choose:
        model.num_beams = best["num_beams"]
        model.length_penalty = best["length_penalty"]
        from zoo.train import save_model_atomically

        save_model_atomically(model, model_path)

    sources, references = family.references("test")
    results["test"] = []
    hypotheses = None
    for num_beams in sorted({1, best["num_beams"]}):
        length_penalty = best["length_penalty"] if num_beams > 1 else 1.0
        output, scores = timed_scores(model, sources, references, num_beams, length_penalty)
        results["test"].append(scores)
        print(json.dumps(scores), flush=True)
        if num_beams == best["num_beams"]:
            hypotheses = output

    sentence_scores = [
        sacrebleu.sentence_bleu(hypothesis, [reference]).score
        for hypothesis, reference in zip(hypotheses, references)
    ]
    order = np.argsort(sentence_scores)
    results["worst"], results["best"] = (
        [
            {
                "source": sources[i],
                "reference": references[i],
                "translation": hypotheses[i],
                "sentence_bleu": round(sentence_scores[i], 1),
            }
            for i in indices
        ]
        for indices in (order[:5], order[::-1][:5])
    )
    results["probes"] = [
        {"source": text, **record}
        for text, record in zip(PROBES, family.predict_records(model, PROBES))
    ]
    results["figures"] = []
    for index in (0, 1, 2):
        name = f"attention_{index}.png"
        attention_figure(model, sources[index], references[index], model_dir / name)
        results["figures"].append(name)
    (model_dir / "decoding.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return results


def main(argv=None) -> int:
    return report_main("nmt", report, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
