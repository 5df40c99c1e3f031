"""The files of the real datasets: one data folder, checksums, a tensor cache, and errors that say what to do.

Every real dataset of the course (:mod:`mtlcourse.data.mnist_pairs`, :mod:`mtlcourse.data.cifar100`,
:mod:`mtlcourse.data.celeba`) reads its original files from one data folder, chosen once here
(:func:`data_root`): the ``root`` argument, else the environment variable ``MTLCOURSE_DATA``, else
``~/.cache/mtlcourse``. Inside it each dataset keeps the layout torchvision uses, so a folder that torchvision
filled works as it is.

Before it reads anything, a dataset checks that every file it needs is there (:func:`check_files`) and, with
``verify=True``, that each file's MD5 is the one torchvision lists for it. A missing file raises
:class:`MissingDataError` and a corrupt one :class:`CorruptDataError`; both messages name the file, the exact
path where it belongs and the call (or the URL) that gets it. A dataset is never built from part of its files.

The prepared tensors (images as bytes, labels) are saved once in ``<root>/mtlcourse-cache/`` and read back
with ``torch.load(weights_only=True)`` (:func:`prepared`), so the second time a dataset is built takes a
fraction of a second. The cache key holds every argument that changes the tensors, and the size and
modification time of every source file, so a new download never meets an old cache.

Used in chapter 13.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlcourse.data.base import SPLITS

#: The environment variable that names the data folder when no ``root`` is given.
ENV_VAR = "MTLCOURSE_DATA"

#: The data folder when neither ``root`` nor ``MTLCOURSE_DATA`` is given.
DEFAULT_ROOT = "~/.cache/mtlcourse"

#: The folder, inside the data folder, that holds the prepared tensors.
CACHE_FOLDER = "mtlcourse-cache"

#: Bumped whenever the preparation of any dataset changes, so that old caches are never read.
CACHE_VERSION = 1


class MissingDataError(FileNotFoundError):
    """A file a dataset needs is not where it belongs; the message says where it belongs and how to get it."""


class CorruptDataError(OSError):
    """A file a dataset needs is there but damaged (wrong MD5, or unreadable); the message says how to fix it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$MTLCOURSE_DATA``, else ``~/.cache/mtlcourse`` (``~`` expanded).

    Example:
        >>> data_root("/tmp/data")
        PosixPath('/tmp/data')
    """
    if root is None:
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root).expanduser()


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """The MD5 of the file at ``path``, as 32 hex digits, read in chunks of ``chunk`` bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_files(
    folder: Path, files: Sequence[tuple[str, str | None]], dataset: str, how: str, verify: bool
) -> None:
    """Raise unless every file of ``files`` (``(name, md5)`` pairs, relative to ``folder``) is there and intact.

    Args:
        folder: where the files belong.
        files: each file's path relative to ``folder`` and its MD5 (``None``: a folder, or no checksum known).
        dataset: the dataset's name, for the messages.
        how: how to get the files (a call or a URL), for the messages.
        verify: compare each file's MD5 with the listed one.

    Raises:
        MissingDataError: naming every missing file, where it belongs, and ``how``.
        CorruptDataError: naming the first file whose MD5 differs, both MD5s, and ``how``.
    """
    missing = [name for name, _ in files if not (folder / name).exists()]
    if missing:
        listing = "\n".join(f"  {folder / name}" for name in missing)
        raise MissingDataError(
            f"{dataset}: {len(missing)} file(s) missing, expected at\n{listing}\n"
            f"Get them with {how}; if you have them elsewhere, pass the data folder above them (same layout) "
            f"as root= or set ${ENV_VAR} to it."
        )
    if not verify:
        return
    for name, expected in files:
        if expected is None:
            continue
        found = md5sum(folder / name)
        if found != expected:
            raise CorruptDataError(
                f"{dataset}: {folder / name} is corrupt or not the original file: its MD5 is {found}, "
                f"expected {expected}. Delete it and get it again with {how}."
            )


def read_or_fail(path: Path, read: Callable[[Path], object], dataset: str, how: str) -> object:
    """``read(path)``, with any failure to parse the file turned into a :class:`CorruptDataError` naming it."""
    try:
        return read(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        if isinstance(error, CorruptDataError):
            raise
        raise CorruptDataError(
            f"{dataset}: {path} cannot be read ({type(error).__name__}: {error}); the file is truncated or "
            f"damaged. Delete it and get it again with {how}."
        ) from error


def download_or_fail(download: Callable[[], object], dataset: str, folder: Path, source: str) -> None:
    """Run ``download()``; if it fails (offline, server down), raise a :class:`MissingDataError` that says
    what failed, where the files belong and where to get them by hand."""
    try:
        download()
    except Exception as error:  # any failure of a download is reported the same way
        raise MissingDataError(
            f"{dataset}: the download failed ({type(error).__name__}: {error}). Without internet access, "
            f"get the files from {source} on another machine and copy them to {folder}."
        ) from error


def fingerprint(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """``(name, size, modification time in ns)`` of each path: changes when a file is replaced."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return out


def cache_file(root: Path, name: str, params: dict[str, object], sources: Sequence[Path]) -> Path:
    """The cache file of dataset ``name`` built with ``params`` from ``sources``.

    Its name shows the parameters and ends in a hash of them, of :data:`CACHE_VERSION` and of the sources'
    :func:`fingerprint`, so any change to one of them gives another file.

    Example:
        >>> cache_file(Path("/data"), "cifar100", {"split": "val", "num_images": 100}, []).name
        'cifar100-split=val-num_images=100-...pt'
    """
    key = json.dumps([CACHE_VERSION, name, params, fingerprint(sources)], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    readable = "-".join(f"{k}={v}" for k, v in params.items())
    return root / CACHE_FOLDER / f"{name}-{readable}-{digest}.pt"


def load_cache(path: Path) -> dict[str, object] | None:
    """The tensors saved at ``path``, read with ``torch.load(weights_only=True)`` (tensors and plain values
    only, no code); ``None`` when there is no such file or it cannot be read (it is then deleted)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable cache is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def save_cache(path: Path, content: dict[str, object]) -> None:
    """Save ``content`` at ``path``: first under a temporary name, then renamed, so that an interrupted run
    never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(content, partial)
    os.replace(partial, path)


def prepared(
    build: Callable[[], dict[str, object]],
    root: Path,
    dataset: str,
    params: dict[str, object],
    folder: Path,
    files: Sequence[tuple[str, str | None]],
    how: str,
    verify: bool,
    cache: bool,
) -> dict[str, object]:
    """The prepared tensors of ``dataset``: from the cache when it has them, else ``build()``'s (then cached).

    Every file of ``files`` must exist (:func:`check_files`). Their MD5s are checked, with ``verify=True``,
    before ``build()`` reads them; a cache written by a verified build is read without checking them again
    (its key holds the files' sizes and modification times, so a replaced file misses it), and an unverified
    build never writes a cache that a verified call would read.

    Args:
        build: reads the files and returns the tensors to cache (a dict of tensors and plain values).
        root: the data folder; the cache lives in ``<root>/mtlcourse-cache/``.
        dataset: the dataset's name, for the messages and (in lower case) the cache file's name.
        params: every argument that changes the tensors.
        folder: where the files belong.
        files: each file's path relative to ``folder`` and its MD5, as for :func:`check_files`.
        how: how to get the files (a call or a URL), for the messages.
        verify: check the MD5s before building.
        cache: read and write the cache; ``False`` always builds and writes nothing.
    """
    check_files(folder, files, dataset, how, verify=False)
    sources = [folder / name for name, _ in files]
    path = cache_file(root, dataset.lower(), {**params, "verified": verify}, sources)
    content = load_cache(path) if cache else None
    if content is None:
        if verify:
            check_files(folder, files, dataset, how, verify=True)
        content = build()
        if cache:
            save_cache(path, content)
    return content


def choose(pool: int, num_images: int | None, generator: torch.Generator, dataset: str) -> Tensor:
    """``num_images`` indices drawn without replacement from ``range(pool)``, sorted; all of them for ``None``.

    Raises:
        ValueError: when ``num_images`` exceeds ``pool``; the message gives the pool's size.

    Example:
        >>> choose(10, 3, torch.Generator().manual_seed(0), "demo").tolist()
        [1, 4, 7]
    """
    if num_images is None:
        return torch.arange(pool)  # [pool]
    if num_images > pool:
        raise ValueError(
            f"{dataset}: num_images={num_images} but this split has only {pool} images; ask for at most "
            f"{pool}, or pass full=True for all of them"
        )
    return torch.randperm(pool, generator=generator)[:num_images].sort().values  # [num_images]


def check_loader_arguments(
    split: str, num_images: int | None, full: bool, image_size: int, seed: int, defaults: dict[str, int]
) -> int | None:
    """Check the arguments every real-dataset loader takes; return the number of images to draw.

    Returns:
        ``None`` (every image) for ``full=True``, else ``num_images`` or the default of ``split``.

    Raises:
        ValueError: an unknown split, a non-positive number of images, both ``full`` and a number, an image
            size below 8 or a negative seed; the message names the argument.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer of at least 8, got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if full:
        if num_images is not None:
            raise ValueError(f"pass num_images or full=True, not both (got num_images={num_images})")
        return None
    if num_images is None:
        return defaults[split]
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    return num_images


def resize(images: Tensor, size: int, mode: str = "bilinear") -> Tensor:
    """Resize 8-bit images ``[N, C, H, W]`` to ``[N, C, size, size]``, still 8-bit.

    ``mode="bilinear"`` filters with antialiasing (each output pixel averages the input pixels it covers);
    ``"nearest-exact"`` copies the input pixel nearest to each output pixel's centre, as PIL's nearest
    resampling does.
    """
    if images.shape[-2:] == (size, size):
        return images
    x = images.float()  # [N, C, H, W]
    if mode == "bilinear":
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    else:
        x = F.interpolate(x, size=(size, size), mode=mode)  # [N, C, size, size]
    return x.round().clamp(0, 255).to(torch.uint8)  # [N, C, size, size]
