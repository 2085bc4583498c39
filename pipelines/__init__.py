"""Dataset pipelines: one TFDS builder per dataset plus the tf.data transforms of each family."""
