"""Cost of every multi-task method per training step, and of the routes to per-task gradients.

Measured side by side in one run on one model and batch (these machines are noisy, so only ratios mean
anything): each method's full training step (forward, mtl_step, optimiser step) as a ratio to equal
weighting, for 2, 4 and 8 MultiShapes tasks on the SmallCNN; then, at 4 tasks, each route to the Jacobian
of the shared parameters against a loop of per-task backward passes that copies every gradient through
CPU memory (the way LibMTL builds its gradient matrix); then the Jacobian's memory against one gradient.
If torchjd is installed (it is not a dependency of mtlcourse), UPGrad through our step is also compared
with torchjd's ``mtl_backward`` with its UPGrad.

    python benchmarks/bench_methods.py [--device cuda] [--repeats 15] [--width 16] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtlcourse.backward import jacobian, mtl_step, task_losses
from mtlcourse.data import MultiShapes
from mtlcourse.methods import METHODS, make_method
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.utils import get_device, synchronize

TASK_SETS = {
    2: ["shape", "color"],
    4: ["shape", "color", "count", "size"],
    8: ["shape", "color", "count", "size", "position", "attributes", "segmentation", "edges"],
}


def median_seconds(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` after ``warmup`` calls, waiting for the device around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_step(model, optimizer, images, targets, method):
    """One full step, exactly what fit does per batch."""

    def step():
        optimizer.zero_grad(set_to_none=True)
        mtl_step(model, images, targets, method)
        optimizer.step()

    return step


def libmtl_style_jacobian(losses, params) -> torch.Tensor:
    """Per-task backward passes, each gradient flattened into a new CPU vector, then stacked on the device."""
    rows = []
    for t in range(len(losses)):
        for p in params:
            p.grad = None
        losses[t].backward(retain_graph=True)
        row = torch.zeros(sum(p.numel() for p in params))  # on the CPU, as in LibMTL's _grad2vec
        offset = 0
        for p in params:
            row[offset : offset + p.numel()] = p.grad.reshape(-1)  # device -> CPU copy
            offset += p.numel()
        rows.append(row.to(losses.device))
    return torch.stack(rows)  # [T, P]


def bench_steps(args, device) -> None:
    print(
        f"\n== step time / equal weighting (SmallCNN width {args.width}, batch {args.batch_size}, {device}) =="
    )
    header = f"{'method':>16}" + "".join(f"{f'T={t}':>10}" for t in TASK_SETS)
    print(header)
    ratios: dict[str, list[str]] = {name: [] for name in METHODS}
    for T, names in TASK_SETS.items():
        data = MultiShapes("train", num_images=args.batch_size, tasks=names, device=device)
        images, targets = data.images, data.targets
        torch.manual_seed(0)
        model = HardParameterSharing(SmallCNN(width=args.width), data.tasks).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        base = median_seconds(
            training_step(model, optimizer, images, targets, make_method("equal", T)), device, args.repeats
        )
        for name in METHODS:
            method = make_method(name, T).to(device)
            seconds = median_seconds(
                training_step(model, optimizer, images, targets, method), device, args.repeats
            )
            ratios[name].append(f"{seconds / base:10.2f}")
        print(f"{'(equal, ms)':>16}{base * 1e3:10.1f} at T={T}")
    for name, row in ratios.items():
        print(f"{name:>16}" + "".join(row))


def bench_routes(args, device) -> None:
    names = TASK_SETS[4]
    data = MultiShapes("train", num_images=args.batch_size, tasks=names, device=device)
    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(width=args.width), data.tasks).to(device)
    params = list(model.shared_parameters())

    def route(kind):
        def run():
            losses = task_losses(model(data.images), data.targets, model.tasks)
            if kind == "libmtl":
                return libmtl_style_jacobian(losses, params)
            return jacobian(losses, params, route=kind)

        return run

    def one_backward():
        for p in model.parameters():
            p.grad = None
        task_losses(model(data.images), data.targets, model.tasks).sum().backward()

    # Interleave the candidates round by round: the machine's speed drifts more than they differ.
    candidates = {
        "sum": one_backward,
        "loop": route("loop"),
        "batched": route("batched"),
        "libmtl": route("libmtl"),
    }
    times = {name: [] for name in candidates}
    for _ in range(args.repeats + 3):
        for name, fn in candidates.items():
            times[name].append(median_seconds(fn, device, repeats=1, warmup=0))
    median = {name: statistics.median(t[3:]) for name, t in times.items()}
    print(
        f"\n== Jacobian of 4 task losses, forward included, / one forward+backward of the summed loss ({device}) =="
    )
    for name in ("loop", "batched", "libmtl"):
        print(
            f"{name:>10}: {median[name] / median['sum']:5.2f}x   (LibMTL-style loop / this = {median['libmtl'] / median[name]:4.2f})"
        )
    P = sum(p.numel() for p in params)
    print(
        f"memory: J is 4 x {P:,} floats = {4 * P * 4 / 2**20:.2f} MiB, i.e. 4 copies of one shared gradient"
    )


def bench_torchjd(args, device) -> None:
    try:
        from torchjd.aggregation import UPGrad as TorchJDUPGrad
        from torchjd.autojac import jac_to_grad
        from torchjd.autojac import mtl_backward as torchjd_mtl_backward
    except ImportError:
        print("\n(torchjd >= 0.18 is not installed: skipping the comparison with torchjd's mtl_backward)")
        return
    names = TASK_SETS[4]
    data = MultiShapes("train", num_images=args.batch_size, tasks=names, device=device)
    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(width=args.width), data.tasks).to(device)
    ours = make_method("upgrad", 4)
    aggregator = TorchJDUPGrad()

    def step_ours():
        model.zero_grad(set_to_none=True)
        mtl_step(model, data.images, data.targets, ours)

    def step_torchjd():
        model.zero_grad(set_to_none=True)
        z = model.encode(data.images)
        outputs = model.decode(z)
        # Separate scalars (not one stacked tensor): torchjd differentiates each task's graph on its own.
        losses = [task.loss(outputs[name], data.targets[name]) for name, task in model.tasks.items()]
        torchjd_mtl_backward(losses, features=z)  # fills .jac of the shared parameters
        jac_to_grad(list(model.shared_parameters()), aggregator)

    a = median_seconds(step_ours, device, args.repeats)
    b = median_seconds(step_torchjd, device, args.repeats)
    print(
        f"\n== UPGrad step at 4 tasks: mtlcourse {a * 1e3:.1f} ms, torchjd {b * 1e3:.1f} ms -> {b / a:.2f}x =="
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device = get_device(args.device)
    bench_steps(args, device)
    bench_routes(args, device)
    bench_torchjd(args, device)


if __name__ == "__main__":
    main()
