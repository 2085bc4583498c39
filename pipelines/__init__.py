"""Dataset pipelines: one TFDS builder per dataset plus the tf.data transforms of each family."""

# The pipelines' errors are ZooErrors (the CLI prints those as one line). The zoo package imports
# the pipelines (zoo.entries) as it loads, so it is loaded first: else importing a builder
# module first would have zoo.entries meet it half-imported.
import zoo.errors  # noqa: F401
