"""Chapter 08's experiment: every architecture on two pairs of tasks, over seeds, trained to convergence.

For every seed it trains one single-task network per task (the separate networks, branch point 0), every
architecture of :data:`ARCHITECTURES` on each pair of :data:`PAIRS`, and hard sharing with a four-stage
backbone with and without batch normalisation; for the first seed also two runs with four times the epochs
(the convergence check) and the four-stage network without BN at a five times smaller learning rate.
Every run uses the same data and the same budget (:data:`BUDGETS`): epochs, learning rate, cosine schedule,
batch size; each keeps its epoch with the lowest summed validation loss and is evaluated once on the test
data.

On a 2-core CPU the ``"cpu"`` budget takes over half an hour, far more than a chapter may, so it
runs once and is stored with its provenance::

    python -m mtlcourse.experiments.where_to_share --scale cpu --seeds 0 1 2

Chapter 08 loads the stored records and re-trains a few of them live (:func:`train_run`) to check them.

Used in chapter 08.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mtlcourse.data import MultiShapes
from mtlcourse.models import (
    MTAN,
    BranchedNetwork,
    CrossStitchNetwork,
    HardParameterSharing,
    MMoE,
    MultiTaskModel,
    SmallCNN,
)
from mtlcourse.stored import RESULTS_DIR, provenance, save_results
from mtlcourse.train import evaluate, fit
from mtlcourse.utils import count_parameters, seed_everything

#: The MultiShapes tasks of the experiment.
TASKS = ["shape", "attributes", "background"]

#: The two pairs of chapter 02, ``shape`` with a related task and with an unrelated one.
PAIRS = {"related": ["shape", "attributes"], "unrelated": ["shape", "background"]}

#: The size of the experiment. ``"cpu"`` is chapter 02's data and learning rate with twice its epochs: with
#: ten, hard sharing on the unrelated pair was still learning (its validation accuracy on ``shape`` rose from
#: 0.55 to 0.76 in a 40-epoch run, and flattened after about 20 epochs), the separate networks were not.
BUDGETS: dict[str, dict[str, Any]] = {
    "cpu": dict(train=2000, val=500, test=1000, image_size=20, width=8, epochs=20, long_epochs=60, lr=2e-3),
    "gpu": dict(
        train=10000, val=2000, test=2000, image_size=32, width=32, epochs=40, long_epochs=120, lr=2e-3
    ),
}
BATCH_SIZE = 64

#: The architectures trained on each pair, name -> (``build(backbone, tasks)``, branch point or ``None``).
#: The branch point k counts the shared stages: 0 is separate networks, 3 (every stage) hard sharing.
ARCHITECTURES: dict[str, tuple[Callable[..., MultiTaskModel], int | None]] = {
    "branched k=1": (functools.partial(BranchedNetwork, branch_point=1), 1),
    "branched": (BranchedNetwork, 2),  # its default branch point
    "hard_sharing": (HardParameterSharing, 3),
    "cross_stitch": (CrossStitchNetwork, None),
    "mtan": (MTAN, None),
    "mmoe": (MMoE, None),
}


def make_splits(budget: dict[str, Any], device: str | torch.device = "cpu") -> dict[str, MultiShapes]:
    """The train, validation and test data of ``budget`` (MultiShapes' default objects, seed 0)."""
    return {
        split: MultiShapes(
            split,
            num_images=budget[split],
            image_size=budget["image_size"],
            tasks=TASKS,
            seed=0,
            device=device,
        )
        for split in ("train", "val", "test")
    }


def train_run(
    build: Callable[[nn.Module, dict], MultiTaskModel],
    tasks: Sequence[str],
    seed: int,
    splits: dict[str, MultiShapes],
    budget: dict[str, Any],
    stages: int = 3,
    batch_norm: bool = True,
    epochs: int | None = None,
    lr: float | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train ``build(backbone, tasks)`` from ``seed`` on ``splits`` with ``budget``; return a JSON-able record.

    Args:
        build: makes the network from a fresh backbone and the task dict, e.g. an entry of
            :data:`ARCHITECTURES` or ``HardParameterSharing``.
        tasks: the task names.
        seed: fixes the initial weights (:func:`~mtlcourse.utils.seed_everything`) and the order of the batches.
        splits: ``{"train", "val", "test"}`` data, from :func:`make_splits`.
        budget: an entry of :data:`BUDGETS`.
        stages: the backbone's number of stages.
        batch_norm: whether the backbone has batch normalisation.
        epochs: the number of epochs (default: the budget's).
        lr: the learning rate (default: the budget's).
        device: where to train.

    Returns:
        A dict with ``tasks`` and ``seed``; ``scores``, each task's test primary metric; ``params``, the number of
        parameters; ``val_curves``, each task's validation primary metric per epoch; ``best_val``, its value at
        the selected epoch; ``train_loss`` and ``val_loss``, each task's losses per epoch; ``seconds``, the
        training time.
    """
    tasks = list(tasks)
    train, val, test = (splits[split].select(tasks) for split in ("train", "val", "test"))
    seed_everything(seed)  # the initial weights
    backbone = SmallCNN(width=budget["width"], num_stages=stages, batch_norm=batch_norm)
    model = build(backbone, {t: train.tasks[t] for t in tasks})
    start = time.perf_counter()
    history = fit(
        model,
        train,
        val,
        epochs=epochs or budget["epochs"],
        lr=lr or budget["lr"],
        batch_size=BATCH_SIZE,
        lr_schedule="cosine",
        seed=seed,  # the order of the batches
        device=device,
        progress=False,
    )
    seconds = time.perf_counter() - start
    primary = {t: train.tasks[t].primary_metric for t in tasks}
    scores = evaluate(model, test, device=device)
    return {
        "tasks": tasks,
        "seed": seed,
        "scores": {t: scores[t][primary[t]] for t in tasks},
        "params": count_parameters(model),
        "val_curves": {t: history.val_metrics[t][primary[t]] for t in tasks},
        "best_val": {t: history.best(t, primary[t]) for t in tasks},
        "train_loss": {t: history.train_loss[t] for t in tasks},
        "val_loss": {t: history.val_loss[t] for t in tasks},
        "seconds": round(seconds, 2),
    }


def single_task(backbone: nn.Module, tasks: dict) -> MultiTaskModel:
    """A network for one task: the backbone and its head (hard sharing with one task)."""
    return HardParameterSharing(backbone, tasks)


def plan(budget: dict[str, Any], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every run of the experiment: ``{"group", "name", "build", "tasks", "seed", **train_run options}``."""
    jobs = []
    for seed in seeds:
        jobs += [dict(group="single", name=t, build=single_task, tasks=[t], seed=seed) for t in TASKS]
        for pair, tasks in PAIRS.items():
            jobs += [
                dict(group=pair, name=name, build=build, tasks=tasks, seed=seed)
                for name, (build, _) in ARCHITECTURES.items()
            ]
        jobs += [
            dict(
                group="bn",
                name=f"4 stages, {label}",
                build=HardParameterSharing,
                tasks=PAIRS["related"],
                seed=seed,
                stages=4,
                batch_norm=bn,
            )
            for label, bn in (("BN", True), ("no BN", False))
        ]
    first = seeds[0]
    jobs += [
        dict(
            group="long",
            name="separate shape",
            build=single_task,
            tasks=["shape"],
            seed=first,
            epochs=budget["long_epochs"],
        ),
        dict(
            group="long",
            name="hard_sharing, unrelated pair",
            build=HardParameterSharing,
            tasks=PAIRS["unrelated"],
            seed=first,
            epochs=budget["long_epochs"],
        ),
        dict(
            group="smaller lr",
            name="4 stages, no BN",
            build=HardParameterSharing,
            tasks=PAIRS["related"],
            seed=first,
            stages=4,
            batch_norm=False,
            lr=budget["lr"] / 5,
        ),
    ]
    return jobs


def run_job(
    job: dict[str, Any],
    splits: dict[str, MultiShapes],
    budget: dict[str, Any],
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train one run of :func:`plan`; return :func:`train_run`'s record with the job's group and name."""
    options = {
        key: value for key, value in job.items() if key not in ("group", "name", "build", "tasks", "seed")
    }
    record = train_run(job["build"], job["tasks"], job["seed"], splits, budget, device=device, **options)
    return {"group": job["group"], "name": job["name"], **record}


def run_all(
    scale: str = "cpu", seeds: Sequence[int] = (0, 1, 2), device: str | torch.device = "cpu", log=print
) -> list[dict[str, Any]]:
    """Train every run of :func:`plan`; return one record per run (:func:`run_job`)."""
    if scale not in BUDGETS:
        raise ValueError(f"scale must be one of {list(BUDGETS)}, got {scale!r}")
    if len(seeds) < 3:
        raise ValueError(f"the experiment compares over seeds and needs at least 3, got seeds={list(seeds)}")
    budget = BUDGETS[scale]
    splits = make_splits(budget, device)
    jobs, records = plan(budget, seeds), []
    for number, job in enumerate(jobs, start=1):
        records.append(run_job(job, splits, budget, device))
        record = records[-1]
        log(
            f"[{number}/{len(jobs)}] {job['group']} {job['name']} seed {job['seed']}: {record['scores']} ({record['seconds']} s)"
        )
    return records


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mtlcourse.experiments.where_to_share``: run the experiment and store its records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(BUDGETS), default="cpu", help="the budget (default: cpu)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="at least three seeds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--directory", default=RESULTS_DIR, help="where to store (default: the package's)")
    args = parser.parse_args(argv)
    command = "python -m mtlcourse.experiments.where_to_share " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    origin = provenance(command.strip(), args.device)  # before training: the commit of the code that runs
    records = run_all(args.scale, args.seeds, args.device)
    path = save_results(f"where_to_share_{args.scale}", records, origin, args.directory)
    print(f"stored {len(records)} runs in {path}")


if __name__ == "__main__":
    main()
