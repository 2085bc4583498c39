"""An RNN model zoo for Keras 3: `zoo.load(name)`, `zoo.build(name, **config)`."""

import os as _os
import sys as _sys

# The command line (`python -m zoo`, the `zoo` script) quiets TensorFlow's start-up chatter
# before the imports below load TensorFlow; `import zoo` elsewhere changes nothing.
_argv = getattr(_sys, "orig_argv", [])  # Python 3.10+
if _argv[1:3] == ["-m", "zoo"] or (len(_argv) > 1 and _os.path.basename(_argv[1]) == "zoo"):
    from zoo.cli import quiet_startup

    quiet_startup()

from zoo.api import build, list_entries, load
from zoo.errors import ConfigError, InputError, UnknownEntryError, ZooError

__all__ = [
    "ConfigError",
    "InputError",
    "UnknownEntryError",
    "ZooError",
    "build",
    "list_entries",
    "load",
]
