"""MultiShapes: determinism, splits, target formats, every control, and the geometry behind the targets.

Set ``MTLCOURSE_TEST_DEVICE=cuda`` to generate on a GPU.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats

from mtlcourse.data import DATASETS, MultiShapes
from mtlcourse.data.base import TARGET_DTYPE, expected_shape, labelled_mask
from mtlcourse.data.synthetic import EDGE_POS_WEIGHT, SHAPES, TASKS, make_tasks

DEVICE = torch.device(os.environ.get("MTLCOURSE_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def data() -> MultiShapes:
    return MultiShapes("train", num_images=300, seed=0, device=DEVICE).to("cpu")


@pytest.fixture(scope="module")
def many() -> MultiShapes:
    """Enough images for frequencies: only the image-level class tasks."""
    return MultiShapes("train", num_images=3000, seed=0, tasks=["shape", "color", "count", "background"])


def test_the_registry_and_the_default_tasks():
    assert DATASETS["multishapes"] is MultiShapes
    assert make_tasks(3) == TASKS
    assert list(TASKS) == [
        "shape", "color", "count", "size", "position", "attributes", "segmentation", "edges", "background"
    ]  # fmt: skip
    assert all(task.description and task.class_names for task in TASKS.values())


def test_the_same_seed_gives_the_same_tensors_on_a_device():
    a = MultiShapes("val", num_images=64, seed=3, device=DEVICE)
    b = MultiShapes("val", num_images=64, seed=3, device=DEVICE)
    assert a.images.device.type == DEVICE.type
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.targets[name], b.targets[name]) for name in TASKS)


def test_other_seeds_and_splits_give_other_images():
    splits = [
        MultiShapes(split, num_images=200, seed=0, tasks=["shape"]) for split in ("train", "val", "test")
    ]
    other_seed = MultiShapes("train", num_images=200, seed=1, tasks=["shape"])
    flat = [d.images.flatten(1) for d in [*splits, other_seed]]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            assert torch.cdist(flat[i], flat[j]).min() > 1.0, "two datasets share an image"


def test_every_target_has_the_format_of_its_task(data):
    N, S = 300, 32
    assert data.images.shape == (N, 3, S, S) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    for name, task in data.tasks.items():
        target = data.targets[name]
        assert tuple(target.shape) == expected_shape(task, data.images), name
        assert (target.dtype == torch.long) == (TARGET_DTYPE[task.kind] == "long"), name
        if target.dtype == torch.long:
            assert target.min() >= 0 and target.max() < task.num_outputs, name
    assert set(data.targets["attributes"].unique().tolist()) == {0.0, 1.0}
    assert data.targets["size"].min() > 0 and data.targets["size"].max() < 0.5  # at most one cell of 2 x 2
    assert data.targets["position"].min() > 0 and data.targets["position"].max() < 1


def test_segmentation_agrees_with_shape_attributes_and_position(data):
    seg, shape = data.targets["segmentation"], data.targets["shape"]
    centre = (data.targets["position"] * 32).long()  # [N, 2] pixel of the main object's centre, (x, y)
    at_centre = seg[torch.arange(len(data)), centre[:, 1], centre[:, 0]]  # [N]
    assert torch.equal(at_centre, shape + 1)
    present = torch.stack([(seg == k + 1).flatten(1).any(1) for k in range(len(SHAPES))], dim=1).float()
    assert torch.equal(present, data.targets["attributes"])


def test_count_is_the_number_of_separate_objects(data):
    seg = data.targets["segmentation"].numpy()
    components = [ndimage.label(mask > 0)[1] for mask in seg]  # 4-connectivity
    assert components == (data.targets["count"] + 1).tolist()


def test_the_main_object_is_the_one_with_the_most_pixels(data):
    seg, centre = data.targets["segmentation"].numpy(), (data.targets["position"] * 32).long()
    several = torch.nonzero(data.targets["count"] > 0).flatten().tolist()
    largest = 0
    for i in several:
        labels, n = ndimage.label(seg[i] > 0)
        pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:]  # [n] pixels per object
        largest += int(pixels.argmax() + 1 == labels[centre[i, 1], centre[i, 0]])
    assert largest >= 0.98 * len(several)  # by area always; a pixel count can differ for tiny objects


def test_size_and_position_match_the_drawn_object_when_it_is_alone(data):
    alone = torch.nonzero(data.targets["count"] == 0).flatten()
    assert len(alone) > 50
    pixels = (torch.arange(32) + 0.5) / 32  # [S] pixel centres
    for i in alone.tolist():
        mask = data.targets["segmentation"][i] > 0  # [S, S]
        side = data.targets["size"][i, 0].item() * 32  # pixels
        kind = SHAPES[data.targets["shape"][i]]
        if kind != "triangle":  # symmetric shapes: the centroid is the centre
            ys, xs = torch.nonzero(mask, as_tuple=True)
            centroid = torch.stack([pixels[xs].mean(), pixels[ys].mean()])
            assert torch.allclose(centroid, data.targets["position"][i], atol=0.5 / 32), i
        area = {"square": side**2, "circle": np.pi / 4 * side**2}.get(kind)
        if area is not None:
            assert abs(mask.sum().item() - area) <= 2 * side + 1, (i, kind)


def test_edges_are_exactly_the_object_pixels_next_to_the_background(data):
    inside = (data.targets["segmentation"] > 0).float()[:, None]  # [N, 1, S, S]
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    neighbours_inside = F.conv2d(inside, cross, padding=1)[:, 0]  # [N, S, S], outside the image counts as 0
    expected = (inside[:, 0] > 0) & (neighbours_inside < 4)
    assert torch.equal(data.targets["edges"], expected.long())
    assert data.targets["edges"].sum() > 0


def test_the_stripes_run_in_the_labelled_orientation():
    clean = MultiShapes("test", num_images=40, noise=0.0, tasks=["segmentation", "background"])
    img = clean.images[:, 0]  # [N, S, S] the background is grey
    ground = clean.targets["segmentation"] == 0  # [N, S, S]
    # One step along the stripes of each orientation, as (dy, dx): horizontal, vertical, rising, falling.
    steps = [(0, 1), (1, 0), (-1, 1), (1, 1)]
    for i in range(len(clean)):
        along = steps[clean.targets["background"][i]]
        for step in steps:
            a, b = img[i], torch.roll(img[i], shifts=(-step[0], -step[1]), dims=(0, 1))
            both = ground[i] & torch.roll(ground[i], shifts=(-step[0], -step[1]), dims=(0, 1))
            both[[0, -1], :] = False  # roll wraps around: ignore the border
            both[:, [0, -1]] = False
            steady = torch.allclose(a[both], b[both], atol=1e-5)
            assert steady == (step == along), (i, step)


def test_background_is_independent_of_the_object_labels(many):
    for name in ("shape", "color", "count"):
        table = torch.zeros(4, many.tasks[name].num_outputs)
        table.index_put_(
            (many.targets["background"], many.targets[name]), torch.ones(len(many)), accumulate=True
        )
        assert stats.chi2_contingency(table.numpy()).pvalue > 0.01, name


def test_classes_are_balanced_by_default(many):
    for name in ("shape", "color", "background"):
        counts = torch.bincount(many.targets[name]).float()
        assert counts.max() / counts.min() < 1.2, name


def test_imbalance_sets_the_ratio_of_shape_frequencies_and_nothing_else():
    balanced = MultiShapes("train", num_images=3000, seed=0, tasks=["shape", "size", "background"])
    skewed = MultiShapes(
        "train", num_images=3000, seed=0, tasks=["shape", "size", "background"], imbalance=8.0
    )
    counts = torch.bincount(skewed.targets["shape"]).float()
    assert torch.all(counts[:-1] > counts[1:]), counts  # circle most frequent, cross least
    assert 6.0 < counts[0] / counts[-1] < 10.5
    assert torch.equal(skewed.targets["size"], balanced.targets["size"])
    assert torch.equal(skewed.targets["background"], balanced.targets["background"])


def test_label_fraction_drops_exactly_that_fraction_with_the_right_markers(data):
    partial = MultiShapes("train", num_images=300, seed=0, label_fraction=0.3, device=DEVICE).to("cpu")
    assert torch.equal(partial.images, data.images), "label controls must not change the images"
    for name, task in partial.tasks.items():
        kept = labelled_mask(partial.targets[name], task)
        assert int(kept.sum()) == 90, name
        assert torch.equal(partial.targets[name][kept], data.targets[name][kept]), name
        missing = partial.targets[name][~kept]
        assert bool((missing == -1).all()) if missing.dtype == torch.long else bool(missing.isnan().all())
    one = MultiShapes("train", num_images=300, seed=0, label_fraction={"size": 0.5}, tasks=["shape", "size"])
    assert one.label_fraction("size") == 0.5 and one.label_fraction("shape") == 1.0


def test_label_noise_changes_exactly_that_fraction_of_class_labels(data):
    noisy = MultiShapes("train", num_images=300, seed=0, label_noise=0.2, device=DEVICE).to("cpu")
    assert torch.equal(noisy.images, data.images)
    for name, task in data.tasks.items():
        changed = (noisy.targets[name] != data.targets[name]).reshape(300, -1).any(1).sum().item()
        assert changed == (60 if task.kind == "multiclass" else 0), name
    only_shape = MultiShapes(
        "train", num_images=300, seed=0, label_noise={"shape": 0.5}, tasks=["shape", "color"]
    )
    assert (only_shape.targets["shape"] != data.targets["shape"]).sum() == 150
    assert torch.equal(only_shape.targets["color"], data.targets["color"])
    with pytest.raises(ValueError, match="multiclass"):
        MultiShapes("train", num_images=8, label_noise={"size": 0.1})


def test_color_shape_correlation_ties_colour_to_shape(many):
    tied = MultiShapes("train", num_images=500, seed=0, tasks=["shape", "color"], color_shape_correlation=1.0)
    assert torch.equal(tied.targets["color"], tied.targets["shape"])
    agreement = (many.targets["color"] == many.targets["shape"]).float().mean()
    assert abs(agreement - 0.25) < 0.03


def test_other_sizes_and_object_counts(data):
    big = MultiShapes("train", num_images=60, image_size=40, max_objects=5, seed=0)  # 3 x 3 cells of 13 px
    assert big.images.shape == (60, 3, 40, 40)
    assert big.tasks["count"].num_outputs == 5 and set(big.targets["count"].tolist()) == set(range(5))
    assert (
        big.targets["segmentation"][:, 39, :].eq(0).all()
        and big.targets["segmentation"][:, :, 39].eq(0).all()
    )
    components = [ndimage.label(mask > 0)[1] for mask in big.targets["segmentation"].numpy()]
    assert components == (big.targets["count"] + 1).tolist()
    single = MultiShapes("train", num_images=20, max_objects=1, tasks=["count", "size"])
    assert single.targets["count"].eq(0).all() and single.targets["size"].max() < 1.0


def test_select_subset_and_to_keep_the_class_and_its_attributes(data):
    part = data.select(["shape", "edges"]).subset(torch.arange(5))
    assert type(part) is MultiShapes and part.split == "train" and part.seed == 0
    assert repr(part) == "MultiShapes(5 images [3, 32, 32], tasks=['shape', 'edges'], device=cpu)"
    moved = part.to(DEVICE)
    assert torch.equal(moved.images.cpu(), part.images) and torch.equal(
        moved.targets["edges"].cpu(), part.targets["edges"]
    )
    with pytest.raises(
        ValueError, match=r"unknown task\(s\) \['colour'\]; valid task names are \['attributes'"
    ):
        data.select(["colour"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "training"}, "split must be one of"),
        ({"num_images": 0}, "num_images must be a positive integer"),
        ({"image_size": 12}, "image_size must be an integer of at least 16"),
        ({"max_objects": 10}, r"max_objects must be an integer in \[1, 9\]"),
        ({"noise": -0.1}, "noise must be at least 0"),
        ({"imbalance": 0.5}, "imbalance must be at least 1"),
        ({"color_shape_correlation": 1.5}, r"color_shape_correlation must be in \[0, 1\]"),
        ({"size_range": (0.8, 0.5)}, "size_range must be"),
        ({"stripe_contrast": 0.9}, r"stripe_contrast must be in \[0, 0.5\]"),
        ({"label_fraction": 2.0}, r"label_fraction must be a number in \[0, 1\]"),
        ({"label_fraction": {"shapes": 0.5}}, r"unknown task\(s\) \['shapes'\]"),
        ({"tasks": ["shape", "colour"]}, r"unknown task\(s\) \['colour'\]"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_arguments_out_of_range_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiShapes(**{"num_images": 4, **kwargs})


def test_edges_are_an_edge_task_of_float_boundary_maps(data):
    assert (TASKS["edges"].kind, TASKS["edges"].num_outputs) == ("edge", 1)
    assert data.targets["edges"].dtype == torch.float32
    share = data.targets["edges"].mean().item()
    assert 0.02 < share < 0.1  # boundary pixels are rare: the reason for the boundary F1
    assert TASKS["edges"].pos_weight == EDGE_POS_WEIGHT == pytest.approx((1 - share) / share, rel=0.2)
    assert f"boundary pixels {share:.2f}" in data.summary()
    partial = MultiShapes("train", num_images=20, tasks=["edges"], label_fraction=0.5)
    assert partial.label_fraction("edges") == 0.5
    assert bool(torch.isnan(partial.targets["edges"]).flatten(1).all(dim=1).sum() == 10)
