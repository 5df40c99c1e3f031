r"""The command line, ``python -m mtlcourse``: ``info``, ``train``, ``evaluate`` and ``bench``.

Every command is a thin layer over the package: the datasets of ``mtlcourse.data.DATASETS``, the
architectures and backbones of ``mtlcourse.models.MODELS`` and ``BACKBONES``, the
methods of :data:`mtlcourse.methods.METHODS`, :func:`~mtlcourse.train.fit` and
:func:`~mtlcourse.train.evaluate`, and the checkpoints of :mod:`mtlcourse.checkpoint`. The dicts are read when
the command runs, so a dataset, model or method added to them is on the command line at once.

- ``info``: versions, devices, the data folder, and whether each dataset's files are there.
- ``train``: one run; prints each task's validation and test metrics and writes ``history.json``,
  ``history.csv``, ``metrics.json``, ``config.json`` (with the provenance) and ``checkpoint.pt`` into ``--out``.
- ``evaluate``: a checkpoint on a split of the data it was trained on, rebuilt from its configuration.
- ``bench``: methods × seeds, plus one single-task network per task and seed with the same budget, to
  ``results.csv`` (validation and test metrics of each run's selected epoch), ``curves.csv`` (each run's
  learning curves, :func:`curve_rows`) and ``table.md``: each task's mean ± 95% t-interval over seeds and
  :math:`\Delta_m` (:func:`mtlcourse.metrics.delta_m`) against the single-task networks, best first.

The data are the same for every seed (``--data-seed``); ``--seed`` and ``--seeds`` fix the initial weights
and the order of the batches, so the spread over seeds is the spread of training. Epochs are numbered from 0
in every file, as in :class:`~mtlcourse.train.History`. Bad arguments print argparse's usage and exit with
status 2; an error of the package (a missing data file, an option a dataset does not take) prints one line
``mtlcourse: error: ...`` and exits with status 1, without a traceback.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> code = main(["train", "--tasks", "shape", "--num-images", "64", "--num-eval-images", "32",
    ...              "--image-size", "16", "--width", "4", "--epochs", "1", "--device", "cpu",
    ...              "--out", out, "--force", "--no-progress"])  # doctest: +ELLIPSIS
    task   metric    validation  test
    shape  accuracy  ...
    >>> code, sorted(p.name for p in Path(out).iterdir())
    (0, ['checkpoint.pt', 'config.json', 'history.csv', 'history.json', 'metrics.json'])

Used in the README and the book's setup page.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from mtlcourse.checkpoint import build_model, load_checkpoint, save_checkpoint
from mtlcourse.data import DATASETS
from mtlcourse.data.files import ENV_VAR, data_root
from mtlcourse.methods import METHODS
from mtlcourse.metrics import delta_m
from mtlcourse.models import BACKBONES, MODELS
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.stored import provenance
from mtlcourse.tasks import Task
from mtlcourse.train import SCHEDULES, History, evaluate, fit
from mtlcourse.utils import get_device, seed_everything

#: The name in error lines: ``mtlcourse: error: ...``.
PROG = "mtlcourse"

#: The architecture and method of the single-task networks of ``bench``: with one task, hard sharing is an
#: ordinary network and every method is plain training on that task's loss.
BASELINE = {"model": "hard_sharing", "method": "equal"}

#: The name of the single-task networks in ``bench``'s files.
BASELINE_NAME = "single-task"

#: The files ``train`` writes into ``--out``.
TRAIN_FILES = ("history.json", "history.csv", "metrics.json", "config.json", "checkpoint.pt")

#: The arguments with which ``info`` builds a dataset that reads files, to see whether they are there.
PROBE = {"num_images": 1, "verify": False, "cache": False, "download": False}

#: Errors of the package that are the user's to fix: one line, no traceback (FloatingPointError: diverged).
USER_ERRORS = (ValueError, OSError, FloatingPointError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m mtlcourse`` with the arguments ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Example:
        >>> main(["train", "--epochs", "0"])  # argparse prints the usage and the error on stderr
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0), or a bad argument (2) after argparse printed the usage
        return stop.code if isinstance(stop.code, int) else 0
    args.command_line = shlex.join(["python", "-m", "mtlcourse", *argv])
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130  # the shell's code for a command stopped by Ctrl-C
    return 0


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (the lines of a long message joined)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


# ----------------------------------------------------------------------------------------------- the parser


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with each option's default, except where there is none or the help states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is argparse.SUPPRESS
        if no_default or isinstance(action.default, bool) or "default" in text:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m mtlcourse``, with one sub-command per command (choices read from the dicts)."""
    parser = argparse.ArgumentParser(
        prog="python -m mtlcourse",
        description="Multi-task learning for image classification: train, evaluate and compare methods.",
        epilog="`python -m mtlcourse COMMAND --help` describes each command's options.",
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    defaults = HelpFormatter
    info = commands.add_parser(
        "info", help="versions, devices, data folder, datasets", formatter_class=defaults
    )
    info.add_argument("--root", help="the data folder (default: $MTLCOURSE_DATA, else ~/.cache/mtlcourse)")
    info.set_defaults(run=run_info)
    experiment = experiment_options()
    train = commands.add_parser(
        "train", parents=[experiment], help="train one model and save it", formatter_class=defaults
    )
    train.add_argument(
        "--method",
        choices=list(METHODS),
        default="equal",
        metavar="METHOD",
        help=f"one of {', '.join(METHODS)}",
    )
    train.add_argument("--seed", type=whole(0), default=0, help="initial weights and batch order")
    train.set_defaults(run=run_train)
    bench = commands.add_parser(
        "bench", parents=[experiment], help="methods x seeds to a table with Δm", formatter_class=defaults
    )
    bench.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=["equal", "uncertainty", "upgrad"],
        metavar="METHOD",
        help=f"any of {', '.join(METHODS)}",
    )
    bench.add_argument(
        "--seeds", nargs="+", type=whole(0), default=[0, 1, 2], help="one run per method and seed"
    )
    bench.set_defaults(run=run_bench)
    add_evaluate_parser(commands)
    return parser


def experiment_options() -> argparse.ArgumentParser:
    """The options that ``train`` and ``bench`` share: data, model, training budget, device and output."""
    options = argparse.ArgumentParser(add_help=False)
    data = options.add_argument_group("data")
    data.add_argument("--dataset", choices=list(DATASETS), default="multishapes", help="the dataset")
    data.add_argument("--tasks", nargs="+", help="the tasks to learn (default: all of the dataset's)")
    data.add_argument("--num-images", type=whole(1), help="training images (default: the dataset's)")
    data.add_argument(
        "--num-eval-images", type=whole(1), help="validation and test images, each (default: the dataset's)"
    )
    data.add_argument("--image-size", type=whole(1), help="image side in pixels (default: the dataset's)")
    data.add_argument("--data-seed", type=whole(0), default=0, help="the data's seed, the same for every run")
    data.add_argument("--root", help="the data folder of datasets with files (default: $MTLCOURSE_DATA)")
    data.add_argument(
        "--download",
        action="store_true",
        help="download the dataset's files if they are missing (needs a network)",
    )
    model = options.add_argument_group("model")
    model.add_argument("--model", choices=list(MODELS), default="hard_sharing", help="the architecture")
    model.add_argument("--backbone", choices=list(BACKBONES), default="small_cnn", help="the shared network")
    widths = [
        f"{n} {p['width'].default}" for n, cls in BACKBONES.items() if "width" in (p := parameters(cls))
    ]
    model.add_argument(
        "--width", type=whole(1), help=f"channels of the first stage (default: {', '.join(widths)})"
    )
    training = options.add_argument_group("training")
    training.add_argument("--epochs", type=whole(1), default=10, help="passes over the training data")
    training.add_argument("--batch-size", type=whole(1), default=64, help="images per step")
    training.add_argument("--lr", type=positive, default=1e-3, help="Adam's learning rate")
    training.add_argument("--lr-schedule", choices=list(SCHEDULES), default="constant", help="lr over steps")
    training.add_argument(
        "--device", default="auto", help="cpu, cuda, mps, or auto (CUDA, then MPS, else CPU)"
    )
    training.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    output = options.add_argument_group("output")
    output.add_argument("--out", help="the folder to write (default: runs/<command>-<dataset>-<method(s)>)")
    output.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    return options


def add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """The ``evaluate`` sub-command."""
    evaluate_ = commands.add_parser(
        "evaluate",
        help="a checkpoint's metrics on a split",
        formatter_class=HelpFormatter,
        description="Rebuild the checkpoint's model and data from its configuration and print its metrics.",
    )
    evaluate_.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by train")
    evaluate_.add_argument("--split", choices=["train", "val", "test"], default="test", help="the data split")
    evaluate_.add_argument("--device", default="auto", help="cpu, cuda, mps, or auto")
    evaluate_.add_argument("--root", help="the data folder, if it moved since training")
    evaluate_.add_argument("--json", help="also write the metrics to this JSON file")
    evaluate_.set_defaults(run=run_evaluate)


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The arguments of ``cls``'s constructor, by name."""
    return dict(inspect.signature(cls).parameters)


def whole(low: int):
    """An argparse type: a whole number of at least ``low`` (argparse reports anything else, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its message
    return parse


def positive(text: str) -> float:
    """An argparse type: a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


# ------------------------------------------------------------------------------------------ configuration


def experiment_config(args: argparse.Namespace, method: str | None) -> dict[str, Any]:
    """The plain configuration of a run from the command line: data, model and training budget."""
    cls = DATASETS[args.dataset]
    root = None if args.root is None else str(Path(args.root).expanduser().resolve())  # for any folder
    download = True if args.download else None  # None: not set, so a dataset without files is not asked
    shared = {"--image-size": ("image_size", args.image_size), "--root": ("root", root)}
    shared |= {"--download": ("download", download)}
    shared = dataset_options(cls, args.dataset, shared)
    sizes = dataset_options(cls, args.dataset, {"--num-images": ("num_images", args.num_images)})
    eval_sizes = dataset_options(
        cls, args.dataset, {"--num-eval-images": ("num_images", args.num_eval_images)}
    )
    backbone_options = {} if args.width is None else {"width": args.width}
    if backbone_options:
        check_takes(BACKBONES[args.backbone], f"backbone {args.backbone!r}", "width", "--width")
    return {
        "dataset": args.dataset,
        "dataset_options": shared,
        "num_images": {"train": sizes, "val": eval_sizes, "test": eval_sizes},
        "data_seed": args.data_seed,
        "tasks": args.tasks,
        "model": args.model,
        "model_options": {},
        "backbone": args.backbone,
        "backbone_options": backbone_options,
        "method": method,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
    }


def dataset_options(cls: type[Dataset], name: str, given: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The options of ``given`` (``{"--flag": (keyword, value)}``) that were set, as the dataset's keywords.

    Raises:
        ValueError: the dataset's constructor does not take an option that was set; the message names it.
    """
    options = {}
    for flag, (keyword, value) in given.items():
        if value is not None:
            check_takes(cls, f"dataset {name!r}", keyword, flag)
            options[keyword] = value
    return options


def check_takes(cls: type, what: str, keyword: str, flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` when ``cls``'s constructor has no argument ``keyword``."""
    if keyword not in parameters(cls):
        takes = [p for p in parameters(cls) if p not in ("split", "tasks", "seed")]
        raise ValueError(f"{what} does not take {flag}; its constructor takes {takes}")


def make_split(config: dict[str, Any], split: str, root: str | None = None) -> Dataset:
    """The ``split`` of the dataset that ``config`` describes (``root`` replaces the saved data folder)."""
    name = config["dataset"]
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; this mtlcourse has {list(DATASETS)}")
    options = {**config["dataset_options"], **config["num_images"][split]}
    if root is not None:
        check_takes(DATASETS[name], f"dataset {name!r}", "root", "--root")
        options["root"] = root
    return DATASETS[name](split, tasks=config["tasks"], seed=config["data_seed"], **options)


def make_splits(config: dict[str, Any]) -> dict[str, Dataset]:
    """The three splits of the data that ``config`` describes.

    The dataset's defaults that were used are written into ``config``: the task names, and the number of
    images and the image size where the dataset takes them, so that the configuration rebuilds the same
    data even if a default of the package changes.
    """
    train = make_split(config, "train")
    config["tasks"] = list(train.tasks)
    splits = {"train": train, "val": make_split(config, "val"), "test": make_split(config, "test")}
    taken = parameters(DATASETS[config["dataset"]])
    if "num_images" in taken:
        config["num_images"] = {split: {"num_images": len(data)} for split, data in splits.items()}
    if "image_size" in taken:
        config["dataset_options"] = {**config["dataset_options"], "image_size": int(train[0][0].shape[-1])}
    return splits


def model_config(config: dict[str, Any], data: Dataset) -> dict[str, Any]:
    """``config`` with the backbone's input channels read from the data (grey or colour images)."""
    channels = int(data[0][0].shape[0])
    return {**config, "backbone_options": {"in_channels": channels, **config["backbone_options"]}}


def check_out(out: str, force: bool) -> Path:
    """The output folder, checked before any work: ``ValueError`` if it holds files and ``force`` is not set.

    The folder is created only when the results are written, so a failed run leaves nothing behind.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(f"--out {out} is not empty; choose another folder, or pass --force to write into it")
    return path


# ------------------------------------------------------------------------------------------------- a run


def train_run(
    config: dict[str, Any], splits: dict[str, Dataset], seed: int, device: torch.device, progress: bool
) -> tuple[MultiTaskModel, History, dict[str, dict[str, dict[str, float]]]]:
    """Train the model that ``config`` describes with ``seed``; return it, its history and its metrics.

    The metrics are ``{"val": ..., "test": ...}``, each :func:`~mtlcourse.train.evaluate`'s
    ``{task: {metric: value}}`` of the selected epoch (the lowest validation loss).
    """
    train = splits["train"]
    tasks = [train.tasks[name] for name in config["tasks"]]
    seed_everything(seed)  # the initial weights
    model = build_model(config, tasks)
    history = fit(
        model,
        train,
        splits["val"],
        method=config["method"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        lr_schedule=config["lr_schedule"],
        device=device,
        seed=seed,
        progress=progress,
    )
    metrics = {split: evaluate(model, splits[split], device=device) for split in ("val", "test")}
    return model, history, metrics


def format_metrics(columns: dict[str, dict[str, dict[str, float]]]) -> str:
    """A table with one row per task and metric and one column per split (``{split: {task: {metric: v}}}``).

    Example:
        >>> print(format_metrics({"test": {"shape": {"accuracy": 0.8125, "loss": 0.5}}}))
        task   metric    test
        shape  accuracy  0.8125
               loss      0.5000
    """
    first = next(iter(columns.values()))
    header = ["task", "metric", *columns]
    rows = []
    for task, metrics in first.items():
        for i, metric in enumerate(metrics):
            values = [f"{columns[split][task][metric]:.4f}" for split in columns]
            rows.append([task if i == 0 else "", metric, *values])
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def plain(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, so that it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def write_json(path: Path, content: Any) -> None:
    """Write ``content`` as indented, strict JSON (non-finite numbers as ``null``)."""
    path.write_text(json.dumps(plain(content), indent=1) + "\n")


def history_rows(history: History) -> list[dict[str, Any]]:
    """One row per epoch and task: the losses, the method's weight and the validation metrics."""
    rows = []
    for epoch in range(len(history.epoch_time)):
        for t, task in enumerate(history.tasks):
            row = {"epoch": epoch, "task": task, "train_loss": history.train_loss[task][epoch]}
            row["val_loss"] = history.val_loss[task][epoch] if history.val_loss else None
            row["weight"] = history.weights[epoch][t]
            for metric, values in history.val_metrics.get(task, {}).items():
                row[f"val_{metric}"] = values[epoch]
            rows.append(plain(row))
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV, with the union of their keys as columns (blank where a row has none)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------- commands


def run_train(args: argparse.Namespace) -> None:
    """``train``: one run, its metrics printed, its files and checkpoint written to ``--out``."""
    device = get_device(args.device)
    config = experiment_config(args, args.method)
    out = check_out(args.out or f"runs/train-{args.dataset}-{args.method}-seed{args.seed}", args.force)
    splits = make_splits(config)
    config = {**model_config(config, splits["train"]), "seed": args.seed}
    config["provenance"] = provenance(args.command_line, device)  # before training: the code that runs
    model, history, metrics = train_run(config, splits, args.seed, device, args.progress)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "history.json", {**dataclasses.asdict(history), "train_time": history.train_time})
    write_csv(out / "history.csv", history_rows(history))
    write_json(out / "metrics.json", {"best_epoch": history.best_epoch, **metrics})
    write_json(out / "config.json", config)
    save_checkpoint(out / "checkpoint.pt", model, config)
    print(format_metrics({"validation": metrics["val"], "test": metrics["test"]}))
    print(
        f"best epoch {history.best_epoch} (lowest validation loss, epochs from 0); wrote {', '.join(TRAIN_FILES)} to {out}"
    )


def run_evaluate(args: argparse.Namespace) -> None:
    """``evaluate``: the checkpoint's model on a split of its data, rebuilt from its configuration."""
    device = get_device(args.device)
    model, config = load_checkpoint(args.checkpoint, device=device)
    for key in ("dataset", "dataset_options", "num_images", "data_seed", "tasks"):
        if key not in config:
            raise ValueError(
                f"the checkpoint {args.checkpoint} has no {key!r} in its configuration, so its data cannot be "
                "rebuilt; it was not written by `python -m mtlcourse train`: use mtlcourse.train.evaluate"
            )
    data = make_split(config, args.split, args.root)
    metrics = evaluate(model, data, device=device)
    print(
        f"{config['model']} on {config['backbone']} {config['backbone_options']}, "
        f"{config['dataset']} {args.split} split ({len(data)} images)"
    )
    print(format_metrics({args.split: metrics}))
    if args.json:
        write_json(Path(args.json), metrics)


def run_info(args: argparse.Namespace) -> None:
    """``info``: versions, devices, the data folder and the datasets' files."""
    from mtlcourse import __version__  # here, not at the top: mtlcourse/__init__.py imports the package

    print(f"mtlcourse {__version__} ({Path(__file__).parent})")
    print(f"python {platform.python_version()}, torch {torch.__version__}")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        print(f"CUDA: available, {len(names)} device(s): {', '.join(names)}")
    else:
        print("CUDA: not available")
    print(f"MPS: {'available' if torch.backends.mps.is_available() else 'not available'}")
    where = "--root" if args.root else f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default"
    root = data_root(args.root)
    print(f"data folder: {root} (from {where})")
    print("datasets:")
    width = max(len(name) for name in DATASETS)
    for name, cls in DATASETS.items():
        print(f"  {name.ljust(width)}  {files_status(cls, root)}")
    print(
        "A missing dataset's error message (`python -m mtlcourse train --dataset NAME`) says how to get it."
    )


def files_status(cls: type[Dataset], root: Path) -> str:
    """Whether dataset ``cls`` finds its files in ``root``: ``embedded`` for a dataset that needs none.

    A dataset that reads files takes a ``root`` argument. Its test split is built with one image, without
    the MD5 check, the cache or a download (those arguments it takes): the files are there if that works.
    """
    if "root" not in parameters(cls):
        return "embedded (no files needed)"
    probe = {key: value for key, value in PROBE.items() if key in parameters(cls)}
    try:
        cls("test", root=root, **probe)
    except FileNotFoundError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"missing: {' '.join(lines[:2])}{' ...' if len(lines) > 2 else ''}"
    except (OSError, ValueError) as error:
        return f"present but unreadable: {one_line(error)}"
    return "present"


def run_bench(args: argparse.Namespace) -> None:
    """``bench``: every method × seed and the single-task networks, to ``results.csv``, ``curves.csv``,
    ``table.md`` and ``config.json``."""
    device = get_device(args.device)
    config = experiment_config(args, None)
    out = check_out(args.out or f"runs/bench-{args.dataset}-{'-'.join(args.methods)}", args.force)
    origin = provenance(args.command_line, device)  # before training: the code that runs
    splits = make_splits(config)
    config = model_config(config, splits["train"])
    tasks = {name: splits["train"].tasks[name] for name in config["tasks"]}
    runs = [(BASELINE_NAME, seed) for seed in args.seeds] + [(m, s) for s in args.seeds for m in args.methods]
    rows, curves = [], []
    with tqdm(
        total=len(args.seeds) * len(tasks) + len(args.seeds) * len(args.methods),
        desc="bench",
        unit="run",
        disable=not args.progress,
    ) as bar:
        for method, seed in runs:
            for run_tasks, run_config in bench_configs(config, method, list(tasks)):
                bar.set_postfix_str(f"{method} {'+'.join(run_tasks)} seed {seed}")
                _, history, metrics = train_run(run_config, splits, seed, device, progress=False)
                rows += result_rows(method, seed, metrics)
                curves += curve_rows(method, seed, history)
                bar.update()
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", rows)
    write_csv(out / "curves.csv", curves)
    table = benchmark_table(rows, tasks)
    (out / "table.md").write_text(markdown_table(table, tasks, args.seeds, origin))
    write_json(
        out / "config.json", {**config, "methods": args.methods, "seeds": args.seeds, "provenance": origin}
    )
    print(markdown_table(table, tasks, args.seeds, origin), end="")
    print(f"wrote results.csv, curves.csv, table.md and config.json to {out}")


def bench_configs(
    config: dict[str, Any], method: str, tasks: list[str]
) -> list[tuple[list[str], dict[str, Any]]]:
    """The runs of one ``(method, seed)``: one multi-task run, or one single-task network per task."""
    if method != BASELINE_NAME:
        return [(tasks, {**config, "method": method})]
    return [([task], {**config, **BASELINE, "model_options": {}, "tasks": [task]}) for task in tasks]


def curve_rows(method: str, seed: int, history: History) -> list[dict[str, Any]]:
    """The learning curves of one run of ``bench``: the rows of ``history.csv`` with the run's name and selection.

    Each row is one epoch and task, prefixed with ``method``, ``seed`` and ``run`` (the run's tasks joined by
    ``+``: a single-task network has one), and followed by ``selected`` (whether this is the epoch the run
    kept, the lowest summed validation loss) and ``seconds`` (that epoch's training time).
    """
    run = "+".join(history.tasks)
    return [
        {
            "method": method,
            "seed": seed,
            "run": run,
            **row,
            "selected": row["epoch"] == history.best_epoch,
            "seconds": history.epoch_time[row["epoch"]],
        }
        for row in history_rows(history)
    ]


def result_rows(
    method: str, seed: int, metrics: dict[str, dict[str, dict[str, float]]]
) -> list[dict[str, Any]]:
    """One row per split, task and metric of a run: ``method, seed, split, task, metric, value``."""
    return [
        {"method": method, "seed": seed, "split": split, "task": task, "metric": metric, "value": value}
        for split, results in metrics.items()
        for task, values in results.items()
        for metric, value in values.items()
    ]


def benchmark_table(rows: list[dict[str, Any]], tasks: dict[str, Task]) -> list[dict[str, Any]]:
    r"""Per method: each task's primary test metric and :math:`\Delta_m` over seeds, best :math:`\Delta_m` first.

    :math:`\Delta_m` (:func:`mtlcourse.metrics.delta_m`) compares each seed's run with the single-task networks
    of the same seed, over each task's primary metric (tasks weigh equally), so the single-task row's
    :math:`\Delta_m` is 0 for every seed.

    Args:
        rows: one dict per split, task and metric of every run (``method``, ``seed``, ``split``, ``task``,
            ``metric``, ``value``: the rows of ``results.csv``), single-task networks included.
        tasks: the tasks, for their primary metric and its direction.

    Returns:
        The table's rows, one dict per method with the keys ``method``, ``tasks`` (task name to a
        :class:`~mtlcourse.stats.Interval`) and ``delta_m`` (an interval, in percent).

    Example:
        >>> tasks = {"a": Task("a", "multiclass", 2), "b": Task("b", "regression", 1)}
        >>> rows = [{"method": m, "seed": 0, "split": "test", "task": t, "metric": k, "value": v}
        ...         for m, t, k, v in [("single-task", "a", "accuracy", 0.8), ("single-task", "b", "mae", 0.1),
        ...                            ("x", "a", "accuracy", 0.9), ("x", "b", "mae", 0.08)]]
        >>> [(r["method"], r["delta_m"].mean) for r in benchmark_table(rows, tasks)]  # (+12.5 % + 20 %) / 2
        [('x', 16.25), ('single-task', 0.0)]
    """
    from mtlcourse.stats import (
        t_interval,
    )  # here: scipy.stats takes a second to import, which --help need not pay

    primary = {name: task.primary_metric for name, task in tasks.items()}
    scores: dict[str, dict[int, dict[str, float]]] = {}  # method -> seed -> task -> primary test metric
    for row in rows:
        if row["split"] == "test" and primary.get(row["task"]) == row["metric"]:
            scores.setdefault(row["method"], {}).setdefault(row["seed"], {})[row["task"]] = row["value"]
    baseline = scores.get(BASELINE_NAME)
    if baseline is None:
        raise ValueError(f"the rows hold no {BASELINE_NAME!r} runs, which Δm needs as its reference")
    directions = {name: {primary[name]: task.higher_is_better} for name, task in tasks.items()}
    table = []
    for method, seeds in scores.items():
        changes = [
            delta_m(
                {t: {primary[t]: v} for t, v in seeds[seed].items()},
                {t: {primary[t]: baseline[seed][t]} for t in seeds[seed]},
                directions,
            )
            for seed in seeds
        ]
        per_task = {t: t_interval([seeds[seed][t] for seed in seeds]) for t in tasks}
        table.append({"method": method, "tasks": per_task, "delta_m": t_interval(changes)})
    return sorted(table, key=lambda row: -row["delta_m"].mean)


def markdown_table(
    table: list[dict[str, Any]], tasks: dict[str, Task], seeds: list[int], origin: dict[str, str]
) -> str:
    """The benchmark table in Markdown: mean ± 95% t-interval over seeds, then where it comes from."""

    def cell(interval: Any, digits: int, sign: str = "") -> str:
        mean = f"{interval.mean:{sign}.{digits}f}"
        return mean if math.isnan(interval.half_width) else f"{mean} ± {interval.half_width:.{digits}f}"

    arrows = {name: "↑" if task.higher_is_better else "↓" for name, task in tasks.items()}
    header = ["method", *(f"{n} {t.primary_metric} {arrows[n]}" for n, t in tasks.items()), "Δm (%) ↑"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [row["method"], *(cell(row["tasks"][n], 3) for n in tasks), cell(row["delta_m"], 2, "+")]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"Test metrics, mean ± 95% t-interval over seeds {seeds} (no interval with one seed); Δm against the "
        f"single-task networks of the same seed, over each task's primary metric; best Δm first.\n\n"
        f"`{origin['command']}`: mtlcourse {origin['mtlcourse']}, commit {origin['commit']}, "
        f"{origin['device']}, {origin['date']}.\n"
    )
    return "\n".join(lines) + "\n\n" + note


__all__ = ["benchmark_table", "curve_rows", "format_metrics", "main"]
