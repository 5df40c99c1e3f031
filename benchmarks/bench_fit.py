"""Training throughput of ``fit`` against a minimal hand-written PyTorch loop, and MultiShapes' speed.

Both loops train the same model on the same in-memory data with the same batch size and optimiser, in
alternating rounds so that a slow spell of the machine hits both. Prints images per second and their
ratio (target: fit >= 0.95 of the bare loop), then the time to generate 10,000 MultiShapes images.

    python benchmarks/bench_fit.py [--device cuda] [--rounds 3] [--epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtlcourse.backward import task_losses
from mtlcourse.data import MultiShapes
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.train import fit
from mtlcourse.utils import get_device, synchronize

TASKS = ["shape", "color", "count", "size"]


def bare_loop(model, images, targets, tasks, epochs: int, batch_size: int, device) -> float:
    """The shortest correct training loop: returns seconds for ``epochs`` epochs."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images), device=images.device)
        for i in range(0, len(images), batch_size):
            idx = order[i : i + batch_size]
            outputs = model(images[idx])
            loss = task_losses(outputs, {k: v[idx] for k, v in targets.items()}, tasks).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-images", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    device = get_device(args.device)
    data = MultiShapes("train", num_images=args.num_images, tasks=TASKS, device=device)
    images_seen = args.epochs * len(data)
    fit_rates, bare_rates = [], []
    for r in range(args.rounds):
        # Alternate which loop goes first, so that a drift of the machine's speed hits both alike.
        for kind in ("bare", "fit") if r % 2 == 0 else ("fit", "bare"):
            torch.manual_seed(r)
            model = HardParameterSharing(SmallCNN(width=args.width), data.tasks).to(device)
            if kind == "bare":
                seconds = bare_loop(
                    model, data.images, data.targets, data.tasks, args.epochs, args.batch_size, device
                )
                bare_rates.append(images_seen / seconds)
            else:
                history = fit(
                    model, data, epochs=args.epochs, batch_size=args.batch_size, device=device, progress=False
                )
                fit_rates.append(images_seen / history.train_time)
        print(f"round {r}: bare {bare_rates[-1]:8.0f} img/s   fit {fit_rates[-1]:8.0f} img/s")
    bare, ours = statistics.median(bare_rates), statistics.median(fit_rates)
    print(f"median: bare {bare:.0f} img/s, fit {ours:.0f} img/s, ratio fit/bare = {ours / bare:.3f}")

    times = []
    for seed in range(5):
        start = time.perf_counter()
        MultiShapes("train", num_images=10_000, seed=seed, device=device)
        synchronize(device)
        times.append(time.perf_counter() - start)
    print(f"MultiShapes: 10,000 images in {statistics.median(times):.3f} s (median of 5, {device})")


if __name__ == "__main__":
    main()
