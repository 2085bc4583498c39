"""The zoo's entries: one `register` call each."""

from pipelines.imdb import load_imdb
from zoo.registry import Entry, register
from zoo.text_classification import TextClassificationConfig, TextClassificationFamily

register(
    Entry(
        name="sentiment",
        family=TextClassificationFamily(
            load_split=load_imdb,
            class_names=("negative", "positive"),
            unlabeled_split="unsupervised",
        ),
        config_class=TextClassificationConfig,
        description="many-to-one: IMDB review sentiment, BiGRU over word2vec-initialised embeddings",
    )
)
