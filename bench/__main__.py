"""`make bench`: the recurrent-layer matrix and the input-pipeline check, saved under results/.

The output goes to stdout and to `bench/results/<date>_<device>_<backend>.txt`, headed by the
versions and the commit, so the numbers quoted in README trace to a file from the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import re
import sys
from pathlib import Path

from bench import input_pipeline, rnn_layers
from zoo.runtime import run_facts

RESULTS = Path(__file__).resolve().parent / "results"


class Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def versions() -> str:
    names = ["keras", "jax", "jaxlib", "tensorflow", "torch"]
    found = []
    for name in names:
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(f"{name} {getattr(module, '__version__', '?')}")
    return ", ".join(found)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layers",
        nargs=argparse.REMAINDER,
        default=[],
        help="arguments for bench.rnn_layers (all the rest of the line)",
    )
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--pipeline-steps", type=int, default=100)
    args = parser.parse_args(argv)

    facts = run_facts()
    device = re.sub(r"[^a-z0-9]+", "-", facts["device"].lower()).strip("-")[:40]
    stamp = datetime.datetime.now(datetime.timezone.utc)
    path = RESULTS / f"{stamp:%Y-%m-%d}_{device}_{facts['backend']}.txt"
    RESULTS.mkdir(exist_ok=True)
    with path.open("a") as log, contextlib.redirect_stdout(Tee(sys.stdout, log)):
        print(f"# make bench, {stamp:%Y-%m-%dT%H:%MZ}; {versions()}")
        print(
            f"# commit {facts.get('commit')}; command: python -m bench {' '.join(argv or sys.argv[1:])}"
        )
        rnn_layers.main(args.layers)
        if not args.skip_pipeline:
            input_pipeline.main(["--steps", str(args.pipeline_steps)])
    print(f"Saved {path}")
    return path


if __name__ == "__main__":
    main()
