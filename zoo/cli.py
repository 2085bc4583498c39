"""`python -m zoo list | train | eval | quantize | export | predict NAME [--set key=value ...]`."""

from __future__ import annotations

import argparse
import json
import sys


def _parser(entry_names: list[str]) -> argparse.ArgumentParser:
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
        sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
        if command == "train":
            sub.add_argument("--runs-dir", help="logs and resume state (default: runs/)")
    sub = with_entry(
        "quantize", "int8-quantize a saved float entry if its test metric holds (0.2 points)"
    )
    sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub = with_entry("export", "export a SavedModel for TF Serving")
    sub.add_argument("--output", help="model folder (default: saved_models/NAME)")
    sub = with_entry("predict", "predict from raw inputs (arguments, or one per line on stdin)")
    sub.add_argument("inputs", nargs="*", help="raw inputs; '-' or none reads stdin")
    sub.add_argument("--model", help="a .keras file (default: the pretrained one)")
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
            )
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
    return {key: metrics.get(key) for key in ("entry", "metric", "value", "split", "num_examples")}


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
    from zoo.registry import get_entry

    inputs = args.inputs
    if not inputs or inputs == ["-"]:
        # Bytes, not text: the models replace invalid UTF-8 themselves instead of failing.
        inputs = sys.stdin.buffer.read().splitlines()
    model = zoo.load(args.name, args.model)
    for record in get_entry(args.name).family.predict_records(model, inputs):
        print(json.dumps(record, ensure_ascii=False))
    return 0
