"""Checkpoints: the round trip is exact, files load with weights_only=True, mismatches are refused by name."""

import pickle
from fractions import Fraction

import pytest
import torch

from mtlcourse.checkpoint import load_checkpoint, save_checkpoint, task_from_dict, task_to_dict
from mtlcourse.models import MODELS, BranchedNetwork, HardParameterSharing, SmallCNN
from mtlcourse.tasks import Task
from mtlcourse.utils import seed_everything

TASKS = [
    Task("shape", "multiclass", 4, ("a", "b", "c", "d"), class_weights=(1.0, 2.0, 1.0, 1.0)),
    Task("edges", "edge", 1, pos_weight=18.0),
]
CONFIG = {"model": "hard_sharing", "backbone": "small_cnn", "backbone_options": {"width": 4}, "epochs": 1}


def make_model(tasks=TASKS, width=4, cls=HardParameterSharing):
    seed_everything(0)
    return cls(SmallCNN(width=width), tasks)


def test_the_round_trip_rebuilds_the_model_and_its_outputs_exactly(tmp_path):
    model = make_model().eval()
    images = torch.rand(2, 3, 16, 16)
    path = save_checkpoint(tmp_path / "checkpoint.pt", model, CONFIG)
    again, config = load_checkpoint(path)
    assert type(again) is HardParameterSharing and again.tasks == model.tasks
    assert config["epochs"] == 1 and config["backbone_options"] == {"width": 4}
    with torch.no_grad():
        expected, got = model(images), again(images)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_loading_into_a_model_built_alike_and_onto_a_device(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", make_model(), CONFIG)
    seed_everything(1)
    fresh = HardParameterSharing(SmallCNN(width=4), TASKS)  # other initial weights
    model, _ = load_checkpoint(path, fresh, device="cpu")
    assert model is fresh
    for name, tensor in make_model().state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_the_file_holds_plain_data_only(tmp_path):
    config = {**CONFIG, "torch": torch.__version__, "sizes": (1, 2)}  # a str subclass and a tuple
    path = save_checkpoint(tmp_path / "checkpoint.pt", make_model(), config)
    content = torch.load(path, weights_only=True)  # would raise on any pickled object other than plain data
    assert type(content["config"]["torch"]) is str and content["config"]["sizes"] == [1, 2]
    assert content["tasks"][0]["class_weights"] == [1.0, 2.0, 1.0, 1.0]
    assert [task_from_dict(fields) for fields in content["tasks"]] == TASKS


def test_tasks_survive_the_plain_dict_form():
    for task in TASKS:
        assert task_from_dict(task_to_dict(task)) == task
    with pytest.raises(ValueError, match="newer version"):
        task_from_dict({**task_to_dict(TASKS[0]), "temperature": 2.0})


def test_a_model_with_other_tasks_is_refused_naming_both(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", make_model(), CONFIG)
    with pytest.raises(ValueError, match=r"tasks \['shape', 'edges'\] but the model has tasks \['shape'\]"):
        load_checkpoint(path, make_model(TASKS[:1]))
    with pytest.raises(
        ValueError, match=r"tasks \['shape', 'edges'\] but the model has tasks \['edges', 'shape'\]"
    ):
        load_checkpoint(path, make_model(TASKS[::-1]))
    other_shape = [Task("shape", "multiclass", 4), TASKS[1]]  # same name, another definition
    with pytest.raises(ValueError, match="task 'shape' is defined differently"):
        load_checkpoint(path, make_model(other_shape))


def test_another_architecture_or_backbone_is_refused_naming_both(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", make_model(), CONFIG)
    with pytest.raises(
        ValueError, match=r"architecture 'hard_sharing' \(HardParameterSharing\).*BranchedNetwork"
    ):
        load_checkpoint(path, make_model(cls=BranchedNetwork))
    with pytest.raises(
        ValueError,
        match=r"backbone 'small_cnn' with options \{'width': 4\}.*shape \[4, 3, 3, 3\] in the checkpoint and \[8, 3, 3, 3\] in the model",
    ):
        load_checkpoint(path, make_model(width=8))


def test_a_config_that_does_not_describe_the_model_is_refused(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="config lacks"):
        save_checkpoint(tmp_path / "c.pt", model, {"model": "hard_sharing"})
    with pytest.raises(ValueError, match="unknown model 'hard'"):
        save_checkpoint(tmp_path / "c.pt", model, {**CONFIG, "model": "hard"})
    with pytest.raises(ValueError, match="MTAN"):
        save_checkpoint(tmp_path / "c.pt", model, {**CONFIG, "model": "mtan"})
    with pytest.raises(ValueError, match="plain data"):
        save_checkpoint(tmp_path / "c.pt", model, {**CONFIG, "lr": Fraction(1, 1000)})
    assert "mtan" in MODELS


def test_missing_foreign_and_unsafe_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an mtlcourse checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with open(tmp_path / "unsafe.pt", "wb") as file:  # a pickled object that weights_only must not build
        pickle.dump({"format": "mtlcourse-checkpoint", "payload": Fraction(1, 3)}, file, protocol=2)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_checkpoint(tmp_path / "unsafe.pt")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_architecture_is_rebuilt_from_its_checkpoint(name, tmp_path):
    tasks = [Task("shape", "multiclass", 4), Task("size", "regression", 1)]
    seed_everything(0)
    model = MODELS[name](SmallCNN(width=4), tasks).eval()
    config = {"model": name, "backbone": "small_cnn", "backbone_options": {"width": 4}}
    again, _ = load_checkpoint(save_checkpoint(tmp_path / "checkpoint.pt", model, config))
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected, got = model(images), again(images)
    assert type(again) is type(model)
    assert all(torch.equal(expected[task], got[task]) for task in expected)
