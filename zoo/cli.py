"""`python -m zoo list | train | ship | eval | quantize | export | predict NAME [options]`."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

# Start-up lines no user can act on. TensorFlow's C++ libraries write them before absl logging
# is initialised, so TF_CPP_MIN_LOG_LEVEL does not hide them; only a filter on the stderr file
# descriptor does. Each is one whole line (one write), matched exactly.
STARTUP_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"
    rb"|E\d{4} [\d:. ]+\d+ util\.cc:\d+\] oneDNN supports DT_\w+ only on platforms with .*"
    # TFDS, when it prepares a dataset for the first time.
    rb"|WARNING:absl:Variant folder \S+ has no dataset_info\.json)\r?\n?$"
)
# Without an NVIDIA driver, TensorFlow still looks for CUDA and says so; on a machine with one,
# the same lines tell why its GPU is not used, and they show.
NO_DRIVER_NOISE = re.compile(
    rb"^(I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine.*"
    rb"|E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*\(303\))\r?\n?$"
)
# A log line's start: a partial one waits for its end before it is judged.
LOG_LINE_START = re.compile(rb"^([IWEF]\d{4} |WARNING)")


def has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def is_startup_noise(line: bytes, nvidia_driver: bool) -> bool:
    """Whether a stderr `line` is start-up chatter `quiet_startup` drops."""
    return bool(STARTUP_NOISE.match(line)) or (
        not nvidia_driver and bool(NO_DRIVER_NOISE.match(line))
    )


def quiet_startup() -> None:
    """Silences what TensorFlow, absl and CUDA say at start-up and no user can act on, for the
    command line only: call it before TensorFlow is imported.

    Sets TF_CPP_MIN_LOG_LEVEL=2 (unless set) and passes the stderr file descriptor through a
    forked filter process that drops the exact `STARTUP_NOISE` lines (and, without an NVIDIA
    driver, the CUDA ones) and forwards everything else at once: real warnings, errors and
    progress bars show. A process, not a thread, so that a crash's last words still get out.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not hasattr(os, "fork") or os.environ.get("ZOO_RAW_STDERR"):
        return
    nvidia_driver = has_nvidia_driver()
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # The filter: it ends when every writer of the pipe is gone.
        os.close(write_end)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C's traceback still passes.
        pending = b""
        while chunk := os.read(read_end, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(
                line + b"\n" for line in lines if not is_startup_noise(line, nvidia_driver)
            )
            if pending and not LOG_LINE_START.match(pending):
                kept, pending = kept + pending, b""  # A progress bar's \r update: show it now.
            if kept:
                os.write(2, kept)
        if pending and not is_startup_noise(pending, nvidia_driver):
            os.write(2, pending)
        os._exit(0)
    os.close(read_end)
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # The pipe's last writer closes: the filter drains and ends.
        for _ in range(100):  # A process that inherited stderr may keep it open: wait 2 s.
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.02)

    atexit.register(restore)


def check_sampling(temperature=None, top_k=None, top_p=None, max_words=None, **_) -> None:
    """Raises ZooError for sampling settings no sampler takes."""
    from zoo.errors import ZooError

    if temperature is not None and not temperature > 0:
        raise ZooError(f"--temperature must be above 0, got {temperature}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ZooError(f"--top-p must be in (0, 1], got {top_p}.")
    for name, value in (("--top-k", top_k), ("--max-words", max_words)):
        if value is not None and value < 1:
            raise ZooError(f"{name} must be at least 1, got {value}.")


def _parser(entry_names: list[str]) -> argparse.ArgumentParser:
    from zoo.generation import SAMPLERS

    parser = argparse.ArgumentParser(prog="zoo", description="The RNN model zoo.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the entries and their test metrics")

    def with_entry(command, help):
        sub = commands.add_parser(command, help=help)
        sub.add_argument("name", metavar="NAME", help=f"one of: {', '.join(entry_names)}")
        return sub

    for command, help in (
        ("train", "train, save and evaluate an entry"),
        ("eval", "evaluate a saved entry on the full test split"),
    ):
        sub = with_entry(command, help)
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value (repeatable)",
        )
        if command == "train":
            sub.add_argument("--runs-dir", help="run folders and resume state (default: runs/)")
            sub.add_argument(
                "--ship",
                action="store_true",
                help="replace the shipped model (saved_models/NAME) by this run's, if better",
            )
            sub.add_argument("--force", action="store_true", help="with --ship: even if worse")
            sub.add_argument("--output", help="ship to this model folder instead")
        else:
            sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub = with_entry(
        "ship", "replace the shipped model by a trained run's (model, metrics, figures at once)"
    )
    sub.add_argument("--run", help="the run folder (default: the newest evaluated run)")
    sub.add_argument("--runs-dir", help="where runs are (default: runs/)")
    sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub.add_argument("--force", action="store_true", help="ship even if its metric is worse")
    sub = with_entry(
        "quantize", "int8-quantize a saved float entry if its test metric holds (0.2 points)"
    )
    sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub = with_entry("export", "export a SavedModel for TF Serving")
    sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub = with_entry("predict", "predict from raw inputs (arguments, or one per line on stdin)")
    sub.add_argument("inputs", nargs="*", help="raw inputs; '-' or none reads stdin")
    sub.add_argument("--model", help="a .keras file (default: the pretrained one)")
    sub.add_argument(
        "--beam",
        type=int,
        help="beam width of a generative entry (default: the model's; 1: greedy)",
    )
    # A language model's sampling (default: the model's own settings).
    sub.add_argument("--sampler", choices=SAMPLERS, help="a language model's sampler")
    sub.add_argument("--temperature", type=float, help="sampling temperature (above 0)")
    sub.add_argument("--top-k", type=int, help="words top_k samples from")
    sub.add_argument("--top-p", type=float, help="probability mass top_p samples from")
    sub.add_argument("--max-words", type=int, help="most words of a continuation")
    sub.add_argument("--seed", type=int, help="sampling seed (same seed, same continuation)")
    return parser


def main(argv: list[str] | None = None) -> int:
    import zoo.entries  # noqa: F401  (registers the entries)
    from zoo.errors import ZooError
    from zoo.registry import entry_names, get_entry

    parser = _parser(entry_names())
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling `inputs` at the first option: `predict NAME --model M "text"`.
    if extra and args.command == "predict" and not any(a.startswith("-") for a in extra):
        args.inputs += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "list":
            return _list()
        get_entry(args.name)  # An unknown name fails here, listing the known ones.
        if args.command == "train":
            from zoo.config import parse_overrides
            from zoo.train import train

            metrics = train(
                args.name,
                parse_overrides(args.set),
                output_dir=args.output,
                runs_dir=args.runs_dir,
                ship=args.ship,
                force=args.force,
            )
            print(json.dumps(_summary(metrics), indent=2))
        elif args.command == "ship":
            from zoo.runtime import ROOT
            from zoo.shipping import latest_run, ship

            runs_dir = args.runs_dir or ROOT / "runs"
            run_dir = args.run or latest_run(runs_dir, args.name)
            target = args.output or get_entry(args.name).directory
            metrics = ship(run_dir, target, force=args.force)
            print(f"Shipped {run_dir} to {target}.")
            print(json.dumps(_summary(metrics), indent=2))
        elif args.command == "eval":
            from zoo.config import parse_overrides, resolve_config
            from zoo.evaluate import evaluate_model
            from zoo.registry import get_entry as entry_of

            config = None
            say_devices("evaluating")
            if args.set:
                config = resolve_config(entry_of(args.name).config_class, parse_overrides(args.set))
            print(
                json.dumps(
                    _summary(evaluate_model(args.name, args.output, config=config)), indent=2
                )
            )
        elif args.command == "quantize":
            from zoo.quantize import describe, quantize_saved_model

            metrics = quantize_saved_model(args.name, args.output)
            print(json.dumps(_summary(metrics), indent=2))
            print(describe(metrics))
        elif args.command == "export":
            from zoo.export import export_model

            say_devices("exporting")
            print(export_model(args.name, args.output))
        elif args.command == "predict":
            return _predict(args)
    except ZooError as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 2
    return 0


def say_devices(doing: str) -> None:
    """The backend and devices, on stderr: stdout stays the command's JSON or path."""
    from zoo.runtime import device_line

    print(device_line(doing), file=sys.stderr, flush=True)


def _summary(metrics: dict) -> dict:
    keys = ("entry", "metric", "value", "split", "num_examples", "run_dir")
    return {key: metrics[key] for key in keys if key in metrics}


def _list() -> int:
    from zoo.registry import entry_names, get_entry

    for name in entry_names():
        entry = get_entry(name)
        metrics_path = entry.directory / "metrics.json"
        measured = "not trained yet"
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
            measured = f"{metrics['metric']} {metrics['value']:.4f} on {metrics['split']}"
        print(f"{name:12s} {measured:32s} {entry.description}")
    return 0


def _predict(args) -> int:
    import zoo
    from zoo.errors import ZooError
    from zoo.registry import get_entry

    inputs = args.inputs
    if not inputs or inputs == ["-"]:
        # Bytes, not text: the models replace invalid UTF-8 themselves instead of failing.
        inputs = sys.stdin.buffer.read().splitlines()
    sampling = {
        "sampler": args.sampler,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "max_words": args.max_words,
    }
    sampling = {key: value for key, value in sampling.items() if value is not None}
    check_sampling(**sampling)  # Before loading: a bad option fails at once.
    say_devices("predicting")
    model = zoo.load(args.name, args.model)
    if sampling or args.seed is not None:
        if not hasattr(model, "sampler"):
            raise ZooError(f"Sampling options apply to language models; '{args.name}' is not one.")
        for key, value in sampling.items():
            setattr(model, key, value)
    if args.beam is not None:
        if not hasattr(model, "num_beams"):
            raise ZooError(f"--beam applies to generative entries; '{args.name}' is not one.")
        if args.beam < 1:
            raise ZooError(f"--beam must be at least 1, got {args.beam}.")
        model.num_beams = args.beam
    family = get_entry(args.name).family
    options = {"seed": args.seed} if args.seed is not None else {}
    for record in family.predict_records(model, inputs, **options):
        print(json.dumps(record, ensure_ascii=False))
    return 0
