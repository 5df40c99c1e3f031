"""Plots: each function returns a Figure with the expected panels, titles, labels and data."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mtlcourse.data import TensorMultiTaskDataset
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.plots import (
    pareto_front,
    plot_affinity,
    plot_bars,
    plot_confusion,
    plot_history,
    plot_pareto,
    plot_tradeoff,
    plot_weights,
    sample_indices,
    show_dense_predictions,
    show_samples,
)
from mtlcourse.tasks import Task

TASKS = {
    "shape": Task("shape", "multiclass", 3, class_names=("disc", "square", "triangle")),
    "striped": Task("striped", "binary", 1),
    "attributes": Task("attributes", "multilabel", 2, class_names=("big", "red")),
    "size": Task("size", "regression", 1),
    "mask": Task("mask", "segmentation", 2, class_names=("background", "object")),
}


class TinyDataset:
    """The dataset protocol show_samples needs: len, (image, targets) items and a tasks dict."""

    def __init__(self, n: int = 10, channels: int = 3, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.tasks = dict(TASKS)
        self.images = torch.rand(n, channels, 8, 8, generator=g)  # [n, C, H, W]
        self.targets = {
            "shape": torch.arange(n) % 3,  # [n]
            "striped": (torch.arange(n) % 2).float(),  # [n]
            "attributes": torch.tensor([[1.0, 0.0]]).repeat(n, 1),  # [n, 2]
            "size": torch.rand(n, 1, generator=g),  # [n, 1]
            "mask": torch.randint(0, 2, (n, 8, 8), generator=g),  # [n, H, W]
        }
        self.targets["shape"][0] = -1
        self.targets["striped"][1] = math.nan

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], {name: target[i] for name, target in self.targets.items()}


def perfect_predictions(data: TinyDataset) -> dict[str, torch.Tensor]:
    """Outputs that get every labelled target right."""
    shape = torch.nn.functional.one_hot(data.targets["shape"].clamp(min=0), 3).float()  # [n, 3]
    return {
        "shape": shape,
        "striped": data.targets["striped"].nan_to_num(0) * 4 - 2,  # [n] logits
        "attributes": data.targets["attributes"] * 4 - 2,  # [n, 2] logits
        "size": data.targets["size"] + 0.1,  # [n, 1]
        "mask": torch.nn.functional.one_hot(data.targets["mask"], 2)
        .permute(0, 3, 1, 2)
        .float(),  # [n, 2, H, W]
    }


def texts_under(ax) -> list[tuple[str, str]]:
    """(text, colour) of the target lines written under one image."""
    return [(t.get_text(), matplotlib.colors.to_hex(t.get_color())) for t in ax.texts]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")  # the figures these tests made


# ---------------------------------------------------------------------------------------------------------
# Sample grids


def test_sample_indices_are_seeded_sorted_and_capped():
    assert sample_indices(100, 5, seed=3) == sample_indices(100, 5, seed=3)
    assert sample_indices(100, 5, seed=3) != sample_indices(100, 5, seed=4)
    assert sample_indices(100, 5) == sorted(sample_indices(100, 5))
    assert sample_indices(3, 8) == [0, 1, 2]
    with pytest.raises(ValueError, match="n must be at least 1"):
        sample_indices(10, 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_show_samples_grid_targets_and_mask_row(channels):
    data = TinyDataset(channels=channels)
    fig = show_samples(data, n=4, seed=1)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 4  # images, then one row of masks
    assert fig.axes[0].get_ylabel() == "image" and fig.axes[4].get_ylabel() == "mask (target)"
    assert fig.get_suptitle() == "Samples and their targets, 4 of 10 images (seed 1)"
    index = sample_indices(10, 4, seed=1)[0]
    assert fig.axes[0].get_title() == f"#{index}"
    lines = [text for text, _ in texts_under(fig.axes[0])]
    shape = "?" if index == 0 else TASKS["shape"].class_names[index % 3]
    assert lines[0] == f"shape: {shape}" and lines[2] == "attributes: big"
    assert fig.axes[6].get_legend() is None  # the colour legend sits beside the last mask only
    assert [t.get_text() for t in fig.axes[7].get_legend().get_texts()] == ["background", "object"]


def test_show_samples_with_predictions_colours_right_and_wrong():
    data = TinyDataset()
    predictions = perfect_predictions(data)
    predictions["shape"][2] = torch.tensor([0.0, 0.0, 5.0])  # image 2 is a triangle: right
    predictions["shape"][3] = torch.tensor([0.0, 0.0, 5.0])  # image 3 is a disc: wrong
    fig = show_samples(data, n=10, tasks=["shape", "striped", "size", "mask"], predictions=predictions)
    assert len(fig.axes) == 3 * 10  # images, target masks, predicted masks
    assert fig.axes[20].get_ylabel() == "mask (prediction)"
    green, red, black = "#2ca02c", "#d62728", "#000000"
    assert texts_under(fig.axes[2])[0] == ("shape: triangle (triangle)", green)
    assert texts_under(fig.axes[3])[0] == ("shape: triangle (disc)", red)
    assert texts_under(fig.axes[0])[0][1] == black  # a missing label is neither right nor wrong
    assert texts_under(fig.axes[1])[1] == ("striped: no (?)", black)
    assert texts_under(fig.axes[4])[1] == ("striped: no (no)", green)
    assert texts_under(fig.axes[4])[2][1] == black  # regression
    assert fig.axes[25].get_xlabel() == "pixel accuracy 1.00"


def test_show_samples_accepts_predictions_for_the_shown_samples_only():
    data = TinyDataset()
    everything = perfect_predictions(data)
    shown = {name: output[sample_indices(10, 3, seed=2)] for name, output in everything.items()}
    whole = show_samples(data, n=3, seed=2, predictions=everything)
    part = show_samples(data, n=3, seed=2, predictions=shown)
    assert [texts_under(ax) for ax in whole.axes[:3]] == [texts_under(ax) for ax in part.axes[:3]]


def test_show_samples_errors():
    data = TinyDataset()
    with pytest.raises(ValueError, match=r"predictions\['shape'\] has 4 rows; expected 10"):
        show_samples(data, n=3, predictions={"shape": torch.zeros(4, 3)})
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['colour'\]"):
        show_samples(data, n=3, predictions={"colour": torch.zeros(10, 3)})
    with pytest.raises(ValueError, match="unknown task"):
        show_samples(data, tasks=["colour"])
    data.images = torch.rand(10, 2, 8, 8)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        show_samples(data, n=2)


# ---------------------------------------------------------------------------------------------------------
# Training curves


class FakeHistory:
    """The History fields the plots read, for two tasks and three epochs."""

    def __init__(self) -> None:
        self.tasks = ["shape", "size"]
        self.train_loss = {"shape": [1.0, 0.7, 0.5], "size": [0.3, 0.2, 0.15]}
        self.val_loss = {"shape": [1.1, 0.8, 0.75], "size": [0.35, 0.25, 0.3]}
        self.val_metrics = {
            "shape": {"accuracy": [0.5, 0.7, 0.8], "macro_f1": [0.4, 0.6, 0.7]},
            "size": {"mae": [0.4, 0.3, 0.35], "rmse": [0.5, 0.4, 0.45]},
        }
        self.weights = [[1.0, 1.0], [0.8, 1.2], [0.6, 1.4]]
        self.best_epoch = 1


def test_plot_history_one_column_per_task():
    fig = plot_history(FakeHistory())
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["shape: loss", "size: loss", "shape: validation accuracy", "size: validation mae"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    train, val = fig.axes[0].get_lines()[:2]
    assert train.get_ydata().tolist() == [1.0, 0.7, 0.5] and train.get_xdata().tolist() == [1, 2, 3]
    assert val.get_label() == "validation"
    assert fig.axes[0].get_lines()[2].get_xdata()[0] == 2  # the selected epoch, counted from 1
    assert fig.get_suptitle() == "Learning curves per task"


def test_plot_history_other_metric_and_no_validation():
    history = FakeHistory()
    history.tasks = ["shape"]
    fig = plot_history(history, metric="macro_f1")
    assert fig.axes[1].get_title() == "shape: validation macro_f1"
    with pytest.raises(ValueError, match=r"task 'size' has no metric 'accuracy'; it has \['mae', 'rmse'\]"):
        plot_history(FakeHistory(), metric="accuracy")
    history.val_loss, history.val_metrics = {}, {}
    fig = plot_history(history)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2  # training loss and selected epoch


def test_plot_weights_draws_one_line_per_task_and_respects_ax():
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    assert plot_weights(FakeHistory(), ax=ax) is fig
    assert plt.get_fignums() == before  # nothing new opened, nothing closed
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["shape", "size"]
    assert lines[1].get_ydata().tolist() == [1.0, 1.2, 1.4]
    history = FakeHistory()
    history.weights = [[math.nan, math.nan]] * 3
    with pytest.raises(ValueError, match="all nan"):
        plot_weights(history)


# ---------------------------------------------------------------------------------------------------------
# Confusion matrices, bars and fronts


def test_plot_confusion_normalised_rows_and_counts():
    confusion = torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = plot_confusion(confusion, class_names=["a", "b", "c"])
    assert len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    cells = [t.get_text() for t in ax.texts]
    assert cells[:6] == ["0.80", "0.20", "0.00", "0.25", "0.75", "0.00"] and cells[6:] == ["0.00"] * 3
    assert ax.get_title() == "Confusion matrix (each row sums to 1)"
    counts = plot_confusion(confusion, normalize=False).axes[0]
    assert [t.get_text() for t in counts.texts][:2] == ["8", "2"]
    assert counts.get_images()[0].get_array().max() == 8
    with pytest.raises(ValueError, match="2 class_names for a 3 x 3"):
        plot_confusion(confusion, class_names=["a", "b"])


def test_plot_bars_means_and_t_intervals():
    results = {
        "shared": {"shape": [0.9, 0.8, 0.85], "color": [0.7, 0.7, 0.7]},
        "single": {"shape": [0.6, 0.8]},
    }
    fig = plot_bars(results, ylabel="test accuracy", title="over seeds")
    ax = fig.axes[0]
    heights = [round(float(bar.get_height()), 6) for bar in ax.patches]
    assert heights == [0.85, 0.7, 0.7]  # shared: shape, color; single: shape only
    caps = [c for c in ax.containers if hasattr(c, "has_yerr")]
    segments = caps[0].lines[2][0].get_segments()  # the error bar of the first bar
    half = 4.303 * 0.05 / 3**0.5  # t(0.975, 2) * sample std / sqrt(n)
    assert segments[0][:, 1] == pytest.approx([0.85 - half, 0.85 + half], rel=1e-3)
    assert ax.get_ylabel() == "test accuracy" and ax.get_title() == "over seeds"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one seed", "shared", "single"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["shape", "color"]
    with pytest.raises(ValueError, match="at least one value"):
        plot_bars({"shared": {"shape": []}})


def test_pareto_front_by_hand_and_with_directions():
    points = [[0.9, 0.1], [0.8, 0.8], [0.7, 0.7], [0.1, 0.9], [0.8, 0.5]]
    assert pareto_front(points) == [3, 1, 0]
    assert pareto_front(points, higher_is_better=(False, False)) == [3, 2, 4, 0]
    assert pareto_front(torch.tensor([[1.0, 1.0], [1.0, 1.0]])) == [0, 1]  # ties dominate nothing
    with pytest.raises(ValueError, match=r"points must be \[N, 2\]"):
        pareto_front([1.0, 2.0])


def test_plot_pareto_draws_the_front_and_labels():
    points = np.array([[0.9, 0.1], [0.8, 0.8], [0.7, 0.7], [0.1, 0.9]])
    fig = plot_pareto(points, labels=["a", "b", "c", "d"], xlabel="shape accuracy", ylabel="colour accuracy")
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_xydata().tolist() == [[0.1, 0.9], [0.8, 0.8], [0.9, 0.1]]
    assert ax.get_xlabel() == "shape accuracy (higher is better)"
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c", "d"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dominated setting", "non-dominated front"]
    with pytest.raises(ValueError, match="3 labels for 4 points"):
        plot_pareto(points, labels=["a", "b", "c"])


# ---------------------------------------------------------------------------------------------------------
# Edge maps and dense predictions


class EdgeDataset(TinyDataset):
    """Three 8x8 images with an edge task: a vertical line, no label, and a square outline."""

    def __init__(self) -> None:
        super().__init__(n=3)
        self.tasks = {"edges": Task("edges", "edge", 1, class_names=("boundary",))}
        edges = torch.zeros(3, 8, 8)
        edges[0, :, 3] = 1.0
        edges[1] = math.nan
        edges[2, 2, 2:6] = edges[2, 5, 2:6] = edges[2, 2:6, 2] = edges[2, 2:6, 5] = 1.0
        self.targets = {"edges": edges}


def shifted_logits(edges: torch.Tensor, columns: int) -> torch.Tensor:
    """Logits +4 on the boundary moved ``columns`` pixels to the right, -4 elsewhere: ``[N, H, W]``."""
    moved = torch.zeros_like(edges)
    moved[..., columns:] = edges.nan_to_num(0)[..., : edges.shape[-1] - columns]
    return 8 * moved - 4


def red_pixels(ax) -> int:
    """How many pixels the error overlay of a prediction panel paints."""
    return int((ax.get_images()[1].get_array()[..., 3] > 0).sum())


def test_show_samples_draws_edge_maps_with_their_legend_and_missing_labels_grey():
    data = EdgeDataset()
    fig = show_samples(data, n=3)
    assert len(fig.axes) == 2 * 3 and fig.axes[3].get_ylabel() == "edges (target)"
    line = fig.axes[3].get_images()[0].get_array()
    assert line.data[:, 3].tolist() == [1] * 8 and line.data.sum() == 8
    assert fig.axes[4].get_images()[0].get_array().mask.all()  # no label: every pixel grey
    assert [t.get_text() for t in fig.axes[5].get_legend().get_texts()] == ["not boundary", "boundary"]


def test_edge_predictions_are_scored_with_the_boundary_tolerance():
    data = EdgeDataset()
    one_off = shifted_logits(data.targets["edges"], 1)  # within the tolerance of 1 pixel: no error
    two_off = shifted_logits(data.targets["edges"], 2)
    fig = show_samples(data, n=3, predictions={"edges": torch.stack([one_off[0], one_off[1], two_off[2]])})
    line, unlabelled, square = fig.axes[6:9]
    assert line.get_ylabel() == "edges (prediction)"
    assert (line.get_xlabel(), red_pixels(line)) == ("boundary F1 1.00", 0)
    assert (unlabelled.get_xlabel(), red_pixels(unlabelled)) == ("boundary F1 nan", 0)
    # moved two columns, the square's left column (4 pixels, corners included) is missed and its new right
    # column is a false alarm (4 pixels); every other pixel lies within one pixel of its partner: P = R = 8/12
    assert square.get_xlabel() == "boundary F1 0.67" and red_pixels(square) == 4 + 4


def dense_data() -> TensorMultiTaskDataset:
    g = torch.Generator().manual_seed(0)
    targets = {
        "mask": torch.randint(0, 3, (5, 16, 16), generator=g),
        "edges": (torch.rand(5, 16, 16, generator=g) < 0.1).float(),
        "shape": torch.randint(0, 2, (5,), generator=g),
    }
    tasks = [Task("mask", "segmentation", 3), Task("edges", "edge", 1), Task("shape", "multiclass", 2)]
    return TensorMultiTaskDataset(torch.rand(5, 3, 16, 16, generator=g), targets, tasks)


def test_show_dense_predictions_draws_the_model_s_per_pixel_outputs_and_leaves_it_as_it_was():
    torch.manual_seed(0)
    data = dense_data()
    model = HardParameterSharing(SmallCNN(width=4, num_stages=2), data.tasks).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fig = show_dense_predictions(model, data, n=2, seed=1)
    labels = [ax.get_ylabel() for ax in fig.axes[::2]]
    assert labels == ["image", "mask (target)", "edges (target)", "mask (prediction)", "edges (prediction)"]
    index = sample_indices(5, 2, seed=1)[0]
    with torch.no_grad():
        expected = model.eval()(data.images[index : index + 1])["mask"][0].argmax(0)  # [H, W]
    assert fig.axes[6].get_images()[0].get_array().tolist() == expected.tolist()
    model.train()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"no per-pixel task .* its tasks are \['shape'\]"):
        show_dense_predictions(HardParameterSharing(SmallCNN(width=4), data.tasks["shape"]), data)


# ---------------------------------------------------------------------------------------------------------
# Affinity and trade-offs


def test_plot_affinity_writes_values_in_cells_on_a_colour_map_centred_at_zero():
    Z = torch.tensor([[0.5, -0.2, 0.0], [0.1, 0.4, math.nan], [-0.8, 0.3, 0.2]])
    fig = plot_affinity(Z, ["shape", "size", "background"])
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel().startswith("affinity Z[i, j]")
    cells = [t.get_text() for t in ax.texts]
    assert cells == ["0.50", "-0.20", "0.00", "0.10", "0.40", "n/a", "-0.80", "0.30", "0.20"]
    image = ax.get_images()[0]
    assert image.get_clim() == pytest.approx((-0.8, 0.8)) and image.get_cmap().name == "RdBu"
    assert ax.get_ylabel() == "task i (the step follows its gradient)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["shape", "size", "background"]
    assert ax.get_title() == "Lookahead inter-task affinity"
    with pytest.raises(ValueError, match="2 task_names for a 3 x 3 matrix"):
        plot_affinity(Z, ["a", "b"])
    with pytest.raises(ValueError, match="square"):
        plot_affinity(torch.zeros(2, 3), ["a", "b"])


def test_plot_tradeoff_draws_means_with_t_intervals_on_both_axes():
    points = {"hard": (1000, [0.8, 0.9, 0.85]), "mtan": ([10.0, 12.0], [0.9])}
    fig = plot_tradeoff(points, xlabel="step time (ms)", ylabel="shape accuracy", log_x=True)
    ax = fig.axes[0]
    hard, mtan = ax.containers
    assert hard.lines[0].get_xydata().tolist() == [[1000.0, pytest.approx(0.85)]]
    assert mtan.lines[0].get_xydata().tolist() == [[11.0, 0.9]]
    half = 4.303 * 0.05 / 3**0.5  # t(0.975, 2) * sample std / sqrt(n)
    y_bar = hard.lines[2][-1].get_segments()[0][:, 1]
    assert y_bar == pytest.approx([0.85 - half, 0.85 + half], rel=1e-3)
    x_bar = mtan.lines[2][0].get_segments()[0][:, 0]
    assert x_bar == pytest.approx([11 - 12.706, 11 + 12.706], rel=1e-3)  # t(0.975, 1) * sqrt(2) / sqrt(2)
    assert [t.get_text() for t in ax.texts] == ["hard", "mtan"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["hard", "mtan"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == ("step time (ms)", "shape accuracy", "log")
    with pytest.raises(ValueError, match="points is empty"):
        plot_tradeoff({})


def test_show_samples_writes_the_most_probable_class_of_a_soft_target():
    task = Task("shape", "multiclass", 3, class_names=("disc", "square", "triangle"))
    rows = torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [math.nan] * 3])
    data = TensorMultiTaskDataset(torch.rand(3, 1, 8, 8), {"shape": rows}, [task])
    fig = show_samples(data, n=3)
    assert [texts_under(ax)[0][0] for ax in fig.axes] == ["shape: triangle", "shape: disc", "shape: ?"]
    predictions = {"shape": torch.tensor([[0.0, 0.0, 5.0], [0.0, 5.0, 0.0], [5.0, 0.0, 0.0]])}
    fig = show_samples(data, n=3, predictions=predictions)
    assert [texts_under(ax)[0][1] for ax in fig.axes] == [
        "#2ca02c",
        "#d62728",
        "#000000",
    ]  # right, wrong, none
