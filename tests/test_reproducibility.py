"""Reproducibility: the README's tour prints the same numbers twice, and fit leaves the global RNG alone."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from mtlcourse import HardParameterSharing, MultiShapes, SmallCNN, fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]


def readme_tour() -> str:
    """The code of the README's "API in ten lines", shrunk: 128/64/64 images and one epoch."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The API in ten lines") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert "seed_everything(0)" in code and "fit(" in code and "print(evaluate(" in code
    shrink = "import mtlcourse.data.synthetic as s\ns.DEFAULT_NUM_IMAGES.update(train=128, val=64, test=64)\n"
    return shrink + re.sub(r"epochs=\d+", "epochs=1", code)


def test_the_readme_tour_prints_the_same_results_in_two_fresh_processes():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread each: modest, and no threading in the sums
    runs = [
        subprocess.run(
            [sys.executable, "-c", readme_tour()],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert "'shape': {'accuracy'" in runs[0].stdout
    assert runs[0].stdout == runs[1].stdout


def small_model(tasks) -> HardParameterSharing:
    return HardParameterSharing(SmallCNN(width=4, num_stages=2), tasks)


class ListDataset(torch.utils.data.Dataset):
    """A dataset without in-memory tensors, so fit and evaluate go through a DataLoader."""

    def __init__(self, data):
        self.items = [data[i] for i in range(len(data))]
        self.tasks = data.tasks

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_fit_leaves_the_global_random_state_alone():
    train = MultiShapes("train", num_images=32, tasks=["color", "size"])
    val = MultiShapes("val", num_images=16, tasks=["color", "size"])
    model = small_model(train.tasks)
    for train_data, val_data in [(train, val), (ListDataset(train), ListDataset(val))]:
        before = torch.random.get_rng_state()
        fit(model, train_data, val_data, epochs=2, batch_size=16, seed=3, progress=False)
        assert torch.equal(torch.random.get_rng_state(), before)


def test_the_same_seed_gives_the_same_weights_and_another_seed_other_weights():
    train = MultiShapes("train", num_images=64, tasks=["color", "size"])
    seed_everything(0)
    initial = small_model(train.tasks)
    models = [copy.deepcopy(initial) for _ in range(3)]
    for model, seed in zip(models, [5, 5, 6]):
        fit(model, train, epochs=2, batch_size=16, seed=seed, progress=False)
    weights = [model.state_dict() for model in models]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_seed_everything_is_exported_at_the_top_level_and_fixes_the_initial_weights():
    seed_everything(7)
    a = small_model(MultiShapes("train", num_images=8, tasks=["color"]).tasks)
    seed_everything(7)
    b = small_model(MultiShapes("train", num_images=8, tasks=["color"]).tasks)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
