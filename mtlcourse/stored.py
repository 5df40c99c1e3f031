"""Stored results: experiments too long for a chapter's CPU budget, run once and saved with their provenance.

A chapter whose full experiment does not fit its budget on a CPU loads the stored result, shows where it
came from (the command, the package version, the commit, the device, the date) and re-runs a few of its
runs live. A re-run must fall in the prediction interval of the stored seeds
(:func:`mtlcourse.stats.prediction_interval`), so a stored result cannot silently go stale when the code
changes. The files live in ``mtlcourse/results/`` and ship with the package, so they load on Colab too.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> origin = provenance("python demo.py", "cpu")
    >>> path = save_results("demo", [{"seed": 0, "accuracy": 0.9}], origin, folder)
    >>> records, origin = load_results("demo", folder)
    >>> records, origin["command"]
    ([{'seed': 0, 'accuracy': 0.9}], 'python demo.py')

Used in chapter 08.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

#: Where the stored results of the chapters live (inside the package, so that they install with it).
RESULTS_DIR = Path(__file__).parent / "results"


def git_commit() -> str:
    """The commit of the checkout this package runs from, and ``"+ uncommitted changes"`` if the package's files
    differ from it; ``"unknown"`` outside a git checkout."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],  # the package's files only
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # not a git checkout: an installed package
        return "unknown"
    return commit + (" + uncommitted changes" if changes else "")


def describe_device(device: str | torch.device) -> str:
    """A short description of ``device``: the GPU's name, or the CPU's architecture and core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def provenance(command: str, device: str | torch.device) -> dict[str, str]:
    """Where a result comes from: the command, the versions, the commit, the device and the date (UTC)."""
    from mtlcourse import __version__  # here, not at the top: mtlcourse/__init__.py imports the package

    return {
        "command": command,
        "mtlcourse": __version__,
        "commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": describe_device(device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_results(
    name: str, records: list[dict[str, Any]], origin: dict[str, str], directory: str | Path = RESULTS_DIR
) -> Path:
    """Write ``records`` (JSON-serialisable dicts, one per run) and their provenance to ``directory/name.json``.

    Args:
        name: the file's name without ``.json``, e.g. ``"where_to_share_cpu"``.
        records: one dict per run.
        origin: their :func:`provenance`, taken when the experiment *started*, so that the commit is the code
            that ran.
        directory: where to write (default: the package's ``results`` folder).

    Returns:
        The path of the file written.
    """
    path = Path(directory) / f"{name}.json"
    content = {"provenance": origin, "records": records}
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def load_results(
    name: str, directory: str | Path = RESULTS_DIR
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Read the records and the provenance that :func:`save_results` wrote to ``directory/name.json``.

    Raises:
        FileNotFoundError: no such stored result; the message lists the ones there are.
    """
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        there = sorted(p.stem for p in Path(directory).glob("*.json"))
        raise FileNotFoundError(
            f"no stored result {name!r} in {directory} (stored results there: {there or 'none'}); "
            "its chapter says which command produces it"
        )
    content = json.loads(path.read_text())
    return content["records"], content["provenance"]


__all__ = ["RESULTS_DIR", "describe_device", "git_commit", "load_results", "provenance", "save_results"]
