"""The command line: files and metrics of train, the evaluate round trip, bench's table, and its errors."""

import contextlib
import csv
import inspect
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlcourse.checkpoint import load_checkpoint
from mtlcourse.cli import BASELINE_NAME, TRAIN_FILES, benchmark_table, main
from mtlcourse.data import DATASETS
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task

#: The tiny budget of every run here: 64 training images, 32 for validation and for test, 1 epoch, width 4.
TINY = [
    "--num-images",
    "64",
    "--num-eval-images",
    "32",
    "--image-size",
    "16",
    "--width",
    "4",
    "--epochs",
    "1",
]
TINY += ["--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `train` run on two tasks, its folder and what it printed."""
    out = tmp_path_factory.mktemp("runs") / "first"
    argv = [
        "train",
        "--dataset",
        "multishapes",
        "--tasks",
        "shape",
        "color",
        "--method",
        "upgrad",
        "--seed",
        "0",
    ]
    printed = io.StringIO()  # capsys is for one test; this run serves several
    with contextlib.redirect_stdout(printed):
        code = main([*argv, *TINY, "--out", str(out)])
    return code, out, printed.getvalue()


def one_error_line(capsys) -> str:
    """What the last command wrote to stderr, checked to be the one line of a user error."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtlcourse: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_train_writes_its_files_and_prints_each_tasks_metrics(trained):
    code, out, printed = trained
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(TRAIN_FILES)
    header = printed.splitlines()[0].split()
    assert header == ["task", "metric", "validation", "test"]
    assert "shape" in printed and "color" in printed and "accuracy" in printed
    with open(out / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(r["epoch"], r["task"]) for r in rows] == [
        ("0", "shape"),
        ("0", "color"),
    ]  # one row per epoch and task
    assert {"train_loss", "val_loss", "weight", "val_accuracy"} <= set(rows[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"shape", "color"} and 0 <= metrics["test"]["shape"]["accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "upgrad" and config["tasks"] == ["shape", "color"]
    sizes = {split: config["num_images"][split]["num_images"] for split in ("train", "val", "test")}
    assert sizes == {"train": 64, "val": 32, "test": 32} and config["dataset_options"] == {"image_size": 16}
    assert config["provenance"]["command"].startswith("python -m mtlcourse train --dataset multishapes")
    assert json.loads((out / "history.json").read_text())["tasks"] == ["shape", "color"]


def test_evaluate_reproduces_the_test_metrics_of_train_exactly(trained, tmp_path, capsys):
    _, out, _ = trained
    saved = json.loads((out / "metrics.json").read_text())
    for split in ("test", "val"):
        path = tmp_path / f"{split}.json"
        argv = ["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--split", split, "--device", "cpu"]
        assert main([*argv, "--json", str(path)]) == 0
        assert json.loads(path.read_text()) == saved[split]
    assert "test" in capsys.readouterr().out


def test_a_checkpoint_is_refused_by_a_model_with_other_tasks(trained):
    _, out, _ = trained
    model = HardParameterSharing(SmallCNN(width=4), [Task("shape", "multiclass", 4)])
    with pytest.raises(ValueError, match=r"tasks \['shape', 'color'\] but the model has tasks \['shape'\]"):
        load_checkpoint(out / "checkpoint.pt", model)
    rebuilt, config = load_checkpoint(out / "checkpoint.pt")  # weights_only=True, rebuilt from the config
    assert list(rebuilt.tasks) == ["shape", "color"] and config["backbone_options"]["width"] == 4


def test_a_non_empty_out_folder_is_refused_without_force(trained, capsys):
    _, out, _ = trained
    assert main(["train", "--tasks", "shape", *TINY, "--out", str(out)]) == 1
    assert "--force" in one_error_line(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["train", "--epochs", "0"],
        ["train", "--dataset", "nope"],
        ["bench", "--methods", "magic"],
    ],
)
def test_bad_arguments_print_the_usage_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "error:" in err and "Traceback" not in err


def test_an_option_the_dataset_does_not_take_exits_1_naming_it(tmp_path, capsys):
    name = next(n for n, cls in DATASETS.items() if "root" not in inspect.signature(cls).parameters)
    assert main(["train", "--dataset", name, "--root", str(tmp_path), "--out", str(tmp_path / "x")]) == 1
    line = one_error_line(capsys)
    assert f"dataset {name!r} does not take --root" in line
    assert not (tmp_path / "x").exists(), "a failed run must leave no folder behind"
    assert main(["train", "--backbone", "resnet18", "--width", "8"]) == 1
    assert "does not take --width" in one_error_line(capsys)
    assert main(["train", "--dataset", "multishapes", "--download", "--out", str(tmp_path / "y")]) == 1
    assert "dataset 'multishapes' does not take --download" in one_error_line(capsys)


def test_missing_data_exits_1_with_one_line(tmp_path, capsys):
    with_files = [n for n, cls in DATASETS.items() if "root" in inspect.signature(cls).parameters]
    if not with_files:
        pytest.skip("no dataset in DATASETS reads files")
    empty = tmp_path / "no-data"
    empty.mkdir()
    for name in with_files:
        assert main(["train", "--dataset", name, "--root", str(empty), "--out", str(tmp_path / name)]) == 1
        assert str(empty) in one_error_line(capsys), name
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "no checkpoint at" in one_error_line(capsys)


def test_bench_writes_rows_and_a_sorted_table_where_single_task_has_delta_m_zero(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "shape", "color", "--methods", "equal", "upgrad", "--seeds", "0", "1"]
    assert main([*argv, *TINY, "--out", str(out)]) == 0
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert {r["method"] for r in rows} == {BASELINE_NAME, "equal", "upgrad"}
    runs = {(r["method"], r["seed"], r["split"], r["task"]) for r in rows}
    assert len(runs) == 3 * 2 * 2 * 2  # methods (with the single-task networks) x seeds x splits x tasks
    table = (out / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    delta = {line.split(" | ")[0][2:]: float(line.split(" | ")[-1].split(" ± ")[0]) for line in lines}
    assert list(delta) == sorted(delta, key=lambda m: -delta[m]), "rows must be sorted best Δm first"
    assert delta[BASELINE_NAME] == 0.0 and f"| {BASELINE_NAME} |" in table
    assert "python -m mtlcourse bench" in table  # the provenance
    assert table in capsys.readouterr().out
    with open(out / "curves.csv") as file:
        curves = list(csv.DictReader(file))
    expected_runs = {(m, s, "shape+color") for m in ("equal", "upgrad") for s in ("0", "1")}
    expected_runs |= {(BASELINE_NAME, s, t) for s in ("0", "1") for t in ("shape", "color")}
    assert {(r["method"], r["seed"], r["run"]) for r in curves} == expected_runs
    assert {r["epoch"] for r in curves} == {"0"}  # one epoch (TINY), numbered from 0
    assert all(r["selected"] == "True" and float(r["seconds"]) > 0 for r in curves)
    assert all(0 <= float(r["val_accuracy"]) <= 1 for r in curves)  # both tasks are classes


def test_bench_curves_mark_the_selected_epoch_of_each_run(tmp_path):
    out = tmp_path / "bench"
    argv = ["bench", "--tasks", "shape", "size", "--methods", "equal", "--seeds", "0", *TINY]
    assert main([*argv, "--epochs", "3", "--out", str(out)]) == 0  # the last --epochs wins
    with open(out / "curves.csv") as file:
        curves = list(csv.DictReader(file))
    runs = {(r["method"], r["run"]) for r in curves}
    assert runs == {("equal", "shape+size"), (BASELINE_NAME, "shape"), (BASELINE_NAME, "size")}
    for method, run in runs:
        rows = [r for r in curves if (r["method"], r["run"]) == (method, run)]
        assert len(rows) == 3 * len(run.split("+"))  # epochs x tasks of the run
        selected = {r["epoch"] for r in rows if r["selected"] == "True"}
        assert len(selected) == 1, (method, run)  # one kept epoch, the same for every task of the run
    size_rows = [r for r in curves if r["task"] == "size"]
    assert all(r["val_mae"] and not r.get("val_accuracy") for r in size_rows)  # regression metrics


def test_benchmark_table_pairs_seeds_and_orients_each_metric():
    tasks = {"a": Task("a", "multiclass", 2), "b": Task("b", "regression", 1)}  # accuracy up, mae down
    values = {  # (method, seed): (accuracy of a, mae of b)
        (BASELINE_NAME, 0): (0.8, 0.10),
        (BASELINE_NAME, 1): (0.5, 0.20),
        ("better", 0): (0.9, 0.08),  # +12.5 % and +20 % (a lower mae is better): +16.25
        ("better", 1): (0.6, 0.10),  # +20 % and +50 %: +35
        ("worse", 0): (0.8, 0.12),  # 0 % and -20 %: -10
        ("worse", 1): (0.5, 0.30),  # 0 % and -50 %: -25
    }
    rows = [
        {"method": m, "seed": s, "split": "test", "task": t, "metric": k, "value": v}
        for (m, s), (acc, mae) in values.items()
        for t, k, v in [("a", "accuracy", acc), ("b", "mae", mae), ("b", "rmse", 9.0)]
    ]
    rows.append(
        {"method": "better", "seed": 0, "split": "val", "task": "a", "metric": "accuracy", "value": 0.0}
    )
    table = benchmark_table(rows, tasks)
    assert [row["method"] for row in table] == ["better", BASELINE_NAME, "worse"]
    by_method = {row["method"]: row for row in table}
    assert by_method["better"]["delta_m"].mean == pytest.approx((16.25 + 35) / 2)
    assert by_method["worse"]["delta_m"].mean == pytest.approx((-10 - 25) / 2)
    assert (
        by_method[BASELINE_NAME]["delta_m"].mean == 0 and by_method[BASELINE_NAME]["delta_m"].half_width == 0
    )
    assert by_method["better"]["tasks"]["a"].mean == pytest.approx(0.75)  # test values only, not val
    one_seed = benchmark_table([r for r in rows if r["seed"] == 0], tasks)
    assert math.isnan(one_seed[0]["delta_m"].half_width)


class FilesDataset:
    """A stand-in for a dataset that reads one file, ``<root>/fake.bin``."""

    def __init__(self, split: str, root: str | None = None, num_images: int | None = None) -> None:
        if not (Path(root) / "fake.bin").exists():
            raise FileNotFoundError(
                f"FilesDataset: 1 file(s) missing, expected at\n  {root}/fake.bin\nGet it."
            )


def test_info_reports_versions_devices_and_each_datasets_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(DATASETS, "fake", FilesDataset)  # DATASETS is read when the command runs
    assert main(["info", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and "CUDA:" in out and "MPS:" in out
    assert f"data folder: {tmp_path} (from --root)" in out
    status = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(status) == set(DATASETS)
    assert "embedded" in status["multishapes"]
    assert f"missing: FilesDataset: 1 file(s) missing, expected at {tmp_path}/fake.bin ..." in status["fake"]
    (tmp_path / "fake.bin").write_bytes(b"")
    assert main(["info", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("  fake")).endswith("  present")


def test_help_describes_every_option_with_its_default(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "passes over the training data (default: 10)" in text and "--num-images" in text
    done = subprocess.run(
        [sys.executable, "-m", "mtlcourse", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert all(command in done.stdout for command in ("info", "train", "evaluate", "bench"))
