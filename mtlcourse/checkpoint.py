"""Checkpoints: a trained model's weights saved with its tasks and the configuration that rebuilds it.

A checkpoint is one file written by :func:`save_checkpoint` and read by :func:`load_checkpoint`. It holds
only plain Python values (dicts, lists, strings, numbers) and tensors, so it loads with
``torch.load(weights_only=True)``, which runs no code from the file: a checkpoint from someone else cannot
execute anything when it is opened. The tasks are stored as plain dicts and rebuilt as
:class:`~mtlcourse.tasks.Task` objects on loading.

The configuration names the architecture (a key of ``mtlcourse.models.MODELS``) and the backbone (a key
of ``mtlcourse.models.BACKBONES``) with their options, so a checkpoint rebuilds its own model. Loading
into a model that was built differently (other tasks, another architecture, another backbone or width) is
refused with a ``ValueError`` that names both sides, instead of PyTorch's list of missing keys.

Example:
    >>> import tempfile
    >>> from mtlcourse.models import HardParameterSharing, SmallCNN
    >>> from mtlcourse.tasks import Task
    >>> model = HardParameterSharing(SmallCNN(width=4), [Task("shape", "multiclass", 4)])
    >>> config = {"model": "hard_sharing", "backbone": "small_cnn", "backbone_options": {"width": 4}}
    >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/model.pt", model, config)
    >>> again, config = load_checkpoint(path)  # rebuilt from the configuration
    >>> list(again.tasks), config["backbone"]
    (['shape'], 'small_cnn')

Used by the command line (``python -m mtlcourse train`` and ``evaluate``, :mod:`mtlcourse.cli`).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtlcourse.models import BACKBONES, MODELS
from mtlcourse.models.base import MultiTaskModel
from mtlcourse.tasks import Task

#: Written into every checkpoint, so that a file from somewhere else is recognised as one.
FORMAT = "mtlcourse-checkpoint"

#: The version of the layout of the file; a later layout can still read this one.
VERSION = 1

#: The keys a configuration must have, and the optional ones with their defaults.
REQUIRED_KEYS = ("model", "backbone")
OPTIONAL_KEYS = {"model_options": {}, "backbone_options": {}}


def task_to_dict(task: Task) -> dict[str, Any]:
    """A :class:`~mtlcourse.tasks.Task` as a plain dict (tuples become lists), for a file or JSON.

    Example:
        >>> task_to_dict(Task("odd", "binary", 1, ("odd",)))["class_names"]
        ['odd']
    """
    fields = dataclasses.asdict(task)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()}


def task_from_dict(fields: dict[str, Any]) -> Task:
    """The :class:`~mtlcourse.tasks.Task` that :func:`task_to_dict` wrote (lists become tuples again).

    Example:
        >>> task = Task("odd", "binary", 1, ("odd",))
        >>> task_from_dict(task_to_dict(task)) == task
        True
    """
    known = {f.name for f in dataclasses.fields(Task)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"the checkpoint's task {fields.get('name')!r} has field(s) {unknown} that this version of "
            "mtlcourse's Task does not know; the checkpoint was written by a newer version: upgrade mtlcourse"
        )
    return Task(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Raise ``ValueError`` unless ``config`` names a known architecture and backbone and is plain JSON data.

    Returns:
        A copy of the configuration made of plain types only (tuples become lists), with the optional keys
        (``model_options``, ``backbone_options``) filled in.

    Example:
        >>> check_config({"model": "hard_sharing", "backbone": "small_cnn", "sizes": (1, 2)})
        {'model_options': {}, 'backbone_options': {}, 'model': 'hard_sharing', 'backbone': 'small_cnn', 'sizes': [1, 2]}
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(
            f"config lacks {missing}: a checkpoint must say how to rebuild its model, e.g. "
            "{'model': 'hard_sharing', 'backbone': 'small_cnn', 'backbone_options': {'width': 16}}"
        )
    if config["model"] not in MODELS:
        raise ValueError(f"unknown model {config['model']!r} in config; valid names are {list(MODELS)}")
    if config["backbone"] not in BACKBONES:
        raise ValueError(
            f"unknown backbone {config['backbone']!r} in config; valid names are {list(BACKBONES)}"
        )
    try:  # plain data only, so that the file loads with weights_only=True and the config can go to JSON
        text = json.dumps({**OPTIONAL_KEYS, **config})
    except TypeError as error:
        raise ValueError(f"config must hold plain data (dicts, lists, str, numbers, None): {error}") from None
    return json.loads(text)  # str and number subclasses (torch.__version__) become plain str and numbers


def save_checkpoint(path: str | Path, model: MultiTaskModel, config: dict[str, Any]) -> Path:
    """Save ``model``'s weights with its tasks and the ``config`` that rebuilds it.

    The weights are copied to the CPU, so a checkpoint written on a GPU loads on any machine.

    Args:
        path: the file to write (its folder must exist); by convention ``checkpoint.pt``.
        model: the trained model, built as ``MODELS[config["model"]](backbone, tasks, **model_options)``
            with ``backbone = BACKBONES[config["backbone"]](**backbone_options)``.
        config: plain data: ``model`` and ``backbone`` (the short names), optionally ``model_options`` and
            ``backbone_options`` (dicts), and anything else worth keeping (the dataset, the training
            settings); the tasks come from the model.

    Returns:
        The path written.

    Raises:
        ValueError: a configuration that does not describe ``model`` (an unknown name, another
            architecture, data that is not plain).

    Example:
        >>> import tempfile
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> model = HardParameterSharing(SmallCNN(width=4), [Task("shape", "multiclass", 4)])
        >>> config = {"model": "hard_sharing", "backbone": "small_cnn", "backbone_options": {"width": 4}}
        >>> save_checkpoint(f"{tempfile.mkdtemp()}/model.pt", model, config).name
        'model.pt'
    """
    config = check_config(config)
    check_architecture(config["model"], model)
    content = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "tasks": [task_to_dict(task) for task in model.tasks.values()],
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    path = Path(path)
    torch.save(content, path)
    return path


def load_checkpoint(
    path: str | Path, model: MultiTaskModel | None = None, device: str | torch.device | None = None
) -> tuple[MultiTaskModel, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`, into ``model`` or into a model rebuilt from it.

    The file is read with ``torch.load(weights_only=True)``: only tensors and plain values, no code.

    Args:
        path: the checkpoint file.
        model: a model to load the weights into; it must have the checkpoint's tasks (same names, order and
            definitions), architecture and backbone. ``None`` (default) rebuilds the model from the
            checkpoint's configuration.
        device: where to put the model; ``None`` leaves a given model where it is and puts a rebuilt one on
            the CPU.

    Returns:
        ``(model, config)``: the model holding the saved weights (in evaluation mode) and the configuration
        that was saved with it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a file that is not a checkpoint, or a ``model`` that differs from the checkpoint's (the
            message names what differs, on both sides).

    Example:
        >>> import tempfile
        >>> from mtlcourse.models import HardParameterSharing, SmallCNN
        >>> model = HardParameterSharing(SmallCNN(width=4), [Task("shape", "multiclass", 4)])
        >>> config = {"model": "hard_sharing", "backbone": "small_cnn", "backbone_options": {"width": 4}}
        >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/model.pt", model, config)
        >>> other = HardParameterSharing(SmallCNN(width=4), [Task("color", "multiclass", 3)])
        >>> load_checkpoint(path, other)
        Traceback (most recent call last):
        ...
        ValueError: the checkpoint ... has tasks ['shape'] but the model has tasks ['color']; ...
    """
    content = read_checkpoint(path)
    config = content["config"]
    tasks = [task_from_dict(fields) for fields in content["tasks"]]
    if model is None:
        model = build_model(config, tasks)
    else:
        check_tasks_match(path, tasks, model)
        check_architecture(config["model"], model, path)
        check_weights_match(path, config, content["state_dict"], model)
    model.load_state_dict(content["state_dict"])
    if device is not None:
        model.to(device)
    return model.eval(), config


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The content of a checkpoint file, read with ``weights_only=True``, after checking its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; `python -m mtlcourse train --out DIR` writes DIR/checkpoint.pt"
        )
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        first_line = next((line for line in lines if "WeightsUnpickler error" in line), lines[0])
        raise ValueError(
            f"{path} is not a checkpoint that loads safely with weights_only=True: {first_line}"
        ) from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an mtlcourse checkpoint (written by mtlcourse.checkpoint.save_checkpoint)"
        )
    if content.get("version", 0) > VERSION:
        raise ValueError(
            f"{path} has checkpoint version {content['version']}, newer than this mtlcourse reads ({VERSION}); "
            "upgrade mtlcourse"
        )
    return content


def build_model(config: dict[str, Any], tasks: list[Task]) -> MultiTaskModel:
    """The untrained model that ``config`` describes, for ``tasks``: the same class and shapes as when saved.

    Example:
        >>> model = build_model({"model": "hard_sharing", "backbone": "small_cnn"}, [Task("odd", "binary", 1)])
        >>> type(model).__name__, list(model.tasks)
        ('HardParameterSharing', ['odd'])
    """
    config = check_config(config)
    backbone = BACKBONES[config["backbone"]](**config["backbone_options"])
    return MODELS[config["model"]](backbone, tasks, **config["model_options"])


def check_architecture(name: str, model: MultiTaskModel, path: str | Path | None = None) -> None:
    """Raise ``ValueError`` unless ``model`` is an instance of the architecture ``MODELS[name]``."""
    expected = MODELS[name]
    if type(model) is not expected:
        where = f"the checkpoint {path}" if path is not None else "the config"
        raise ValueError(
            f"{where} is for architecture {name!r} ({expected.__name__}) but the model is a "
            f"{type(model).__name__}; build the model with MODELS[{name!r}], or load with model=None"
        )


def check_tasks_match(path: str | Path, tasks: list[Task], model: MultiTaskModel) -> None:
    """Raise ``ValueError`` unless ``model`` has ``tasks``: the same names, in the same order, defined alike."""
    saved, built = [task.name for task in tasks], list(model.tasks)
    if saved != built:
        raise ValueError(
            f"the checkpoint {path} has tasks {saved} but the model has tasks {built}; build the model for "
            f"the checkpoint's tasks, or load with model=None to rebuild it"
        )
    for task in tasks:
        if model.tasks[task.name] != task:
            raise ValueError(
                f"task {task.name!r} is defined differently in the checkpoint {path} ({task}) and in the "
                f"model ({model.tasks[task.name]})"
            )


def check_weights_match(
    path: str | Path, config: dict[str, Any], state: dict[str, Tensor], model: MultiTaskModel
) -> None:
    """Raise ``ValueError`` when the saved weights do not fit ``model``: another backbone or width.

    The message names the checkpoint's backbone and options, and the first tensor that differs on both sides.
    """
    mine = model.state_dict()
    differences = [f"{name!r} is missing from the model" for name in state if name not in mine]
    differences += [f"the model's {name!r} is not in the checkpoint" for name in mine if name not in state]
    differences += [
        f"{name!r} has shape {list(state[name].shape)} in the checkpoint and {list(mine[name].shape)} in the model"
        for name in state
        if name in mine and state[name].shape != mine[name].shape
    ]
    if differences:
        more = f" ({len(differences) - 1} more difference(s))" if len(differences) > 1 else ""
        backbone = f"{config['backbone']!r} with options {config.get('backbone_options', {})}"
        raise ValueError(
            f"the checkpoint {path} holds a backbone {backbone} whose weights do not fit the model: "
            f"{differences[0]}{more}; build the model with that backbone, or load with model=None"
        )


__all__ = ["build_model", "load_checkpoint", "save_checkpoint", "task_from_dict", "task_to_dict"]
