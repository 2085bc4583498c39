"""`python -m zoo list | train | ship | eval | quantize | export | predict NAME [options]`."""

from __future__ import annotations

import argparse
import json
import sys


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

            print(export_model(args.name, args.output))
        elif args.command == "predict":
            return _predict(args)
    except ZooError as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 2
    return 0


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
