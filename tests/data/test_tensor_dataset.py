"""TensorMultiTaskDataset: validation, slicing, devices, the summary table, and the label helpers.

Set ``MTLCOURSE_TEST_DEVICE=cuda`` to run the device tests on a GPU.
"""

import math
import os

import pytest
import torch

from mtlcourse.data.base import (
    TensorMultiTaskDataset,
    add_label_noise,
    corrupt_labels,
    drop_labels,
    labelled_mask,
    per_task,
)
from mtlcourse.data.synthetic import MultiShapes
from mtlcourse.tasks import Task

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))
N, H, W = 10, 4, 4
TASKS = {
    "cls": Task("cls", "multiclass", 3),
    "bin": Task("bin", "binary", 1),
    "tags": Task("tags", "multilabel", 2),
    "seg": Task("seg", "segmentation", 3),
    "reg": Task("reg", "regression", 2),
}


def make_targets(n: int = N) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "cls": torch.arange(n) % 3,
        "bin": (torch.arange(n) % 2).float(),
        "tags": torch.randint(0, 2, (n, 2), generator=g).float(),
        "seg": torch.randint(0, 3, (n, H, W), generator=g),
        "reg": torch.randn(n, 2, generator=g),
    }


@pytest.fixture
def data() -> TensorMultiTaskDataset:
    images = torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(1))
    return TensorMultiTaskDataset(images, make_targets(), TASKS)


def test_items_hold_the_image_and_one_target_per_task(data):
    image, targets = data[3]
    assert len(data) == N
    assert torch.equal(image, data.images[3])
    assert list(targets) == list(TASKS)
    assert targets["cls"].item() == 0 and targets["bin"].item() == 1.0
    assert targets["seg"].shape == (H, W) and targets["reg"].shape == (2,)


def test_a_task_without_target_and_a_target_without_task_are_named(data):
    targets = make_targets()
    del targets["reg"]
    with pytest.raises(ValueError, match="task 'reg' has no target"):
        TensorMultiTaskDataset(data.images, targets, TASKS)
    with pytest.raises(ValueError, match=r"target\(s\) \['extra'\] have no task"):
        TensorMultiTaskDataset(data.images, {**make_targets(), "extra": torch.zeros(N)}, TASKS)


@pytest.mark.parametrize(
    ("task", "bad", "message"),
    [
        ("cls", torch.zeros(N), "torch.long"),
        ("cls", torch.zeros(N + 1, dtype=torch.long), r"shape \[10\]"),
        ("cls", torch.full((N,), 3), r"classes in \[0, 2\] or -1"),
        ("bin", torch.full((N,), 2.0), "0., 1. or nan"),
        ("tags", torch.zeros(N, 3), r"shape \[10, 2\]"),
        ("seg", torch.zeros(N, H, W + 1, dtype=torch.long), r"shape \[10, 4, 4\]"),
        ("reg", torch.zeros(N, 2, dtype=torch.long), "float tensor"),
        ("reg", torch.tensor([[math.inf, 0.0]] * N), r"finite values or nan \(missing\), got \[inf\]"),
    ],
)
def test_targets_must_match_their_task_kind(data, task, bad, message):
    targets = {**make_targets(), task: bad}
    with pytest.raises(ValueError, match=f"task '{task}'.*{message}"):
        TensorMultiTaskDataset(data.images, targets, TASKS)


def test_images_must_be_float_nchw_in_the_unit_interval():
    targets = {"bin": torch.zeros(2)}
    tasks = {"bin": TASKS["bin"]}
    for images, message in [
        (torch.rand(2, 4, 4), r"\[N, C, H, W\]"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "float"),
        (torch.full((2, 1, 4, 4), 1.5), r"\[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            TensorMultiTaskDataset(images, targets, tasks)


def test_image_errors_say_how_to_fix_them():
    targets, tasks = {"bin": torch.zeros(2)}, {"bin": TASKS["bin"]}
    for images, message in [
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), r"images\.float\(\) / 255"),
        (torch.full((2, 1, 4, 4), 255.0), r"got values from 255 to 255; rescale them \(images in 0-255 need"),
        (torch.rand(2, 4, 4), r"images\[:, None\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            TensorMultiTaskDataset(images, targets, tasks)


def test_an_empty_dataset_is_refused_where_it_is_made(data):
    with pytest.raises(
        ValueError, match=r"a dataset needs at least one image, got images of shape \[0, 1, 4, 4\]"
    ):
        TensorMultiTaskDataset(torch.rand(0, 1, 4, 4), {"bin": torch.zeros(0)}, {"bin": TASKS["bin"]})
    with pytest.raises(
        ValueError, match=r"a dataset needs at least one image.*indices that select at least one"
    ):
        data.subset([])
    with pytest.raises(ValueError, match="a dataset needs at least one image"):
        data.subset(torch.zeros(N, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_images must be a positive integer, got 0"):
        MultiShapes("train", num_images=0)


def test_select_keeps_the_named_tasks_in_order_and_lists_valid_names_on_error(data):
    picked = data.select(["reg", "cls"])
    assert type(picked) is TensorMultiTaskDataset
    assert list(picked.tasks) == ["reg", "cls"] and list(picked.targets) == ["reg", "cls"]
    assert picked.images is data.images  # no copy of the images
    with pytest.raises(
        ValueError, match=r"unknown task\(s\) \['nope'\].*\['bin', 'cls', 'reg', 'seg', 'tags'\]"
    ):
        data.select(["cls", "nope"])


def test_subset_by_indices_and_by_mask(data):
    part = data.subset([4, 1])
    assert len(part) == 2 and torch.equal(part.images[0], data.images[4])
    assert torch.equal(part.targets["seg"][1], data.targets["seg"][1])
    mask = data.targets["cls"] == 0
    assert len(data.subset(mask)) == int(mask.sum()) == 4


def test_to_a_device_keeps_every_value(data):
    moved = data.to(DEVICE)
    assert moved.device.type == DEVICE.type and type(moved) is type(data)
    assert torch.equal(moved.images.cpu(), data.images)
    for name in TASKS:
        assert torch.equal(moved.targets[name].cpu(), data.targets[name])
    back = moved.to("cpu")
    assert back.to("cpu").images is back.images  # already there: shared, not copied


def test_summary_reports_kind_outputs_label_fraction_and_balance():
    images = torch.zeros(4, 1, 2, 2)
    targets = {
        "cls": torch.tensor([0, 0, 1, -1]),
        "reg": torch.tensor([[1.0], [3.0], [float("nan")], [float("nan")]]),
    }
    tasks = {"cls": Task("cls", "multiclass", 2), "reg": Task("reg", "regression", 1)}
    table = TensorMultiTaskDataset(images, targets, tasks).summary()
    assert table.splitlines() == [
        "task  kind        outputs  labelled  balance",
        "cls   multiclass  2        0.75      frequencies 0.67 0.33",
        "reg   regression  1        0.50      mean 2.00, std 1.00",
    ]


@pytest.mark.parametrize("name", list(TASKS))
def test_drop_labels_keeps_exactly_the_asked_fraction_with_the_right_marker(name):
    task, target = TASKS[name], make_targets(40)[name]
    dropped = drop_labels(target, task, 0.25, torch.Generator().manual_seed(0))
    kept = labelled_mask(dropped, task)
    assert int(kept.sum()) == 10
    assert torch.equal(dropped[kept], target[kept])  # kept labels are untouched
    if target.dtype == torch.long:
        assert bool((dropped[~kept] == -1).all())
    else:
        assert bool(torch.isnan(dropped[~kept]).all())
    assert drop_labels(target, task, 1.0, torch.Generator()) is target


def test_label_noise_changes_exactly_the_asked_fraction_to_other_valid_classes():
    task = Task("c", "multiclass", 5)
    clean = torch.arange(200) % 5
    noisy = add_label_noise(clean, task, 0.3, torch.Generator().manual_seed(0))
    assert int((noisy != clean).sum()) == 60
    assert bool(((noisy >= 0) & (noisy < 5)).all())
    assert len(set((noisy[noisy != clean] - clean[noisy != clean]).remainder(5).tolist())) == 4  # any shift
    partial = clean.clone()
    partial[::2] = -1
    noisy = add_label_noise(partial, task, 0.3, torch.Generator().manual_seed(0))
    assert bool((noisy[::2] == -1).all())  # missing labels stay missing
    with pytest.raises(ValueError, match="multiclass"):
        add_label_noise(torch.zeros(4), Task("b", "binary", 1), 0.5, torch.Generator())


def test_corrupt_labels_uses_one_stream_per_task_and_validates_its_arguments():
    tasks = {"a": Task("a", "multiclass", 3), "b": Task("b", "multiclass", 3)}
    targets = {"a": torch.arange(30) % 3, "b": torch.arange(30) % 3}
    both = corrupt_labels(targets, tasks, tasks, {"a": 0.5, "b": 0.5}, 0.0, 0, "train", torch.device("cpu"))
    only_a = corrupt_labels(
        targets, tasks, {"a": tasks["a"]}, {"a": 0.5}, 0.0, 0, "train", torch.device("cpu")
    )
    assert torch.equal(both["a"], only_a["a"])  # selecting tasks never changes another task's labels
    assert not torch.equal(both["a"] == -1, both["b"] == -1)  # tasks lose different images
    with pytest.raises(ValueError, match=r"label_fraction\['a'\] must be a number in \[0, 1\]"):
        per_task({"a": 1.5}, ["a"], ["a"], "label_fraction", 1.0)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['z'\]"):
        per_task({"z": 0.5}, ["a"], ["a"], "label_fraction", 1.0)


def test_the_label_fraction_of_a_dataset(data):
    half = drop_labels(data.targets["reg"], TASKS["reg"], 0.5, torch.Generator().manual_seed(0))
    partial = data.replace(targets={**data.targets, "reg": half})
    assert math.isclose(partial.label_fraction("reg"), 0.5)
    assert partial.label_fraction("cls") == 1.0


def test_edge_targets_are_float_maps_of_0_1_or_nan_summarised_by_their_boundary_share():
    images = torch.zeros(4, 1, 2, 2)
    edges = torch.tensor(
        [[[1.0, 0.0], [0.0, 0.0]]] * 3 + [[[math.nan] * 2] * 2]
    )  # [4, 2, 2]; image 4 unlabelled
    tasks = {"edges": Task("edges", "edge", 1)}
    data = TensorMultiTaskDataset(images, {"edges": edges}, tasks)
    assert data.summary().splitlines()[1] == "edges  edge  1        0.75      boundary pixels 0.25"
    for bad, message in [
        (edges.long(), "must be a float tensor"),
        (edges * 2, r"must hold 0\., 1\. or nan"),
        (edges[:, :1], r"must have shape \[4, 2, 2\]"),
    ]:
        with pytest.raises(ValueError, match=f"task 'edges' \\(edge\\) {message}"):
            TensorMultiTaskDataset(images, {"edges": bad}, tasks)
    dropped = drop_labels(edges[:3], tasks["edges"], 1 / 3, torch.Generator().manual_seed(0))
    assert labelled_mask(dropped, tasks["edges"]).tolist().count(True) == 1
    assert int(torch.isnan(dropped).flatten(1).all(dim=1).sum()) == 2  # whole images lose their label
