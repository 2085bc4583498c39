"""One package per model family (keras-hub's `src/models/<name>/` shape): the model, its
preprocessor, its config and its family (data, scoring, serving)."""
