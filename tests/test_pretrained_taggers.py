"""The committed pretrained taggers (`slots`, `ner`): load everywhere they should, and tag well."""

import itertools
import json

import keras
import pytest

import zoo
from tests.tagging_fixtures import requires_tagging_mirror
from zoo.api import model_path

pytestmark = pytest.mark.pretrained

# name -> (a raw sentence not in the data, its expected tags, the test split's size)
EXAMPLES = {
    "slots": (
        "show me flights from boston to denver on monday",
        [
            "O",
            "O",
            "O",
            "O",
            "B-fromloc.city_name",
            "O",
            "B-toloc.city_name",
            "O",
            "B-depart_date.day_name",
        ],
        893,
    ),
    "ner": (
        "Angela Merkel met officials of the European Union in Paris on Monday .",
        ["B-PER", "I-PER", "O", "O", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O", "O", "O"],
        3453,
    ),
}
# Span F1 floors for the first 400 test sentences, tagged from their raw text (the served path).
SUBSET_FLOORS = {"slots": 0.93, "ner": 0.83}


def requires_model(name):
    return pytest.mark.skipif(not model_path(name).exists(), reason=f"no pretrained {name}")


@pytest.mark.parametrize("name", [pytest.param(n, marks=requires_model(n)) for n in EXAMPLES])
def test_pretrained_tagger_loads_with_plain_keras_and_tags_a_new_sentence(name):
    sentence, tags, _ = EXAMPLES[name]
    model = keras.saving.load_model(model_path(name))
    outputs = model.predict([sentence], verbose=0)
    predicted = [model.tag_names[i] for i in outputs["tag_ids"][0, : len(tags)]]
    assert predicted == tags
    if name == "slots":
        assert model.intent_names[int(outputs["intent_logits"][0].argmax())] == "atis_flight"


@pytest.mark.parametrize("name", [pytest.param(n, marks=requires_model(n)) for n in EXAMPLES])
def test_metrics_json_records_the_full_test_and_dev_splits(name):
    directory = model_path(name).parent
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == EXAMPLES[name][2]
    assert metrics["metric"] == "f1" and 0.5 < metrics["value"] <= 1.0
    assert metrics["dev"]["num_examples"] == {"slots": 500, "ner": 3250}[name]
    assert metrics["training"]["training_wall_seconds"] > 0 and metrics["config"]["cell"]
    assert metrics["figures"] == ["confusion.png"] and (directory / "confusion.png").exists()
    if name == "ner":
        assert set(metrics["per_type"]) == {"LOC", "MISC", "ORG", "PER"}


@pytest.mark.real_data
@requires_tagging_mirror
@pytest.mark.parametrize("name", [pytest.param(n, marks=requires_model(n)) for n in EXAMPLES])
def test_pretrained_span_f1_on_the_first_400_test_sentences_from_raw_text(name):
    from seqeval.metrics import f1_score

    from zoo.registry import get_entry

    examples = list(
        itertools.islice(get_entry(name).family.load_split("test").as_numpy_iterator(), 400)
    )
    model = zoo.load(name)
    outputs = model.predict([example["text"].decode() for example in examples], verbose=0)
    gold, predicted = [], []
    for example, tag_ids in zip(examples, outputs["tag_ids"]):
        tags = [tag.decode() for tag in example["tags"]]
        gold.append(tags)
        predicted.append([model.tag_names[i] for i in tag_ids[: len(tags)]])
    f1 = f1_score(gold, predicted)
    assert f1 >= SUBSET_FLOORS[name], f1
