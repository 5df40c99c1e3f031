"""The real-dataset loaders on small generated files in each dataset's exact on-disk format.

Nothing here downloads: every test writes MNIST / FashionMNIST gzipped IDX files, the CIFAR-100 python pickles
or CelebA's text files and JPEG folder into a temporary data folder, and reads them with ``verify=False``
(generated files cannot have the MD5s of the real ones; a test checks that ``verify=True`` refuses them).
"""

import gzip
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlcourse.data import (
    CIFAR100,
    DATASETS,
    CelebA,
    CorruptDataError,
    MissingDataError,
    MultiFashion,
    MultiMNIST,
    TensorMultiTaskDataset,
    mnist_pairs,
)
from mtlcourse.data import files as files_module
from mtlcourse.data.celeba import ATTRIBUTES, REGIONS
from mtlcourse.data.files import cache_file, data_root, resize
from mtlcourse.data.mnist_pairs import overlay
from mtlcourse.models import HardParameterSharing, SmallCNN
from mtlcourse.train import fit

# ---------------------------------------------------------------------------------------------------------
# Writers of each format


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: big-endian magic number, one big-endian size per dimension, then the bytes."""
    return struct.pack(f">{array.ndim + 1}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, source: str = "MNIST", train: int = 60, test: int = 20, seed: int = 0) -> Path:
    """The four gzipped IDX files of a tiny MNIST in ``<root>/<source>/raw/``; each class draws its own bar."""
    rng = np.random.default_rng(seed)
    folder = root / source / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(count, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 255  # a bar whose height gives the class
        with gzip.open(folder / f"{kind}-images-idx3-ubyte.gz", "wb") as f:
            f.write(idx_bytes(images, 2051))
        with gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(idx_bytes(labels, 2049))
    return folder


def write_cifar(root: Path, train: int = 50, test: int = 20, seed: int = 0) -> Path:
    """``<root>/cifar-100-python/`` with ``train``, ``test`` and ``meta`` pickles, keys as bytes like the
    original Python 2 pickles; fine class f belongs to coarse class f // 5."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", train), ("test", test)):
        fine = rng.integers(0, 100, size=count)
        batch = {
            b"filenames": [f"image_{i}.png".encode() for i in range(count)],
            b"batch_label": f"{name} batch".encode(),
            b"fine_labels": fine.tolist(),
            b"coarse_labels": (fine // 5).tolist(),
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {
        b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)],
    }
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def write_celeba(root: Path, count: int = 30, seed: int = 0) -> Path:
    """``<root>/celeba/`` with ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and 178x218 JPEGs in
    ``img_align_celeba/``; images 0..17 train, 18..23 val, 24..29 test (partition codes 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    values = rng.choice([-1, 1], size=(count, 40))
    lines = [str(count), " ".join(ATTRIBUTES) + " "]
    lines += [f"{n} " + " ".join(f"{v:2d}" for v in row) for n, row in zip(names, values)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    codes = [0 if i < count * 0.6 else 1 if i < count * 0.8 else 2 for i in range(count)]
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {c}\n" for n, c in zip(names, codes)))
    for i, (name, row) in enumerate(zip(names, values)):
        pixels = np.full((218, 178, 3), 100 + i % 100, dtype=np.uint8)  # neighbours differ in grey
        pixels[:20] = (255, 0, 0)  # the rows that the central square crop removes
        pixels[-20:] = (0, 0, 255)
        pixels[60:120, 40:140] = (0, 200, 0) if row[31] == 1 else (200, 200, 200)  # "Smiling" shows
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One data folder holding every generated dataset."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST", seed=1)
    write_cifar(root)
    write_celeba(root)
    return root


# ---------------------------------------------------------------------------------------------------------
# Every loader


LOADERS = {
    "multimnist": (MultiMNIST, {"num_images": 12}, 1),
    "multifashion": (MultiFashion, {"num_images": 12}, 1),
    "cifar100": (CIFAR100, {"num_images": 12}, 3),
    "celeba": (CelebA, {"num_images": 6}, 3),
}


@pytest.mark.parametrize("name", LOADERS)
def test_every_loader_is_a_tensor_dataset_with_the_declared_formats(root, name):
    cls, arguments, channels = LOADERS[name]
    assert DATASETS[name] is cls
    data = cls("train", root=root, verify=False, **arguments)
    assert isinstance(data, TensorMultiTaskDataset) and data.split == "train" and data.seed == 0
    assert data.images.dtype == torch.float32 and data.images.shape[:2] == (arguments["num_images"], channels)
    assert data.images.min() >= 0 and data.images.max() <= 1
    for task_name, task in data.tasks.items():
        target = data.targets[task_name]
        assert target.shape[0] == len(data)
        assert target.dtype == (torch.long if task.kind == "multiclass" else torch.float32)
    assert len(data.summary().splitlines()) == len(data.tasks) + 1
    again = cls("train", root=root, verify=False, **arguments)
    assert torch.equal(again.images, data.images), "the same arguments must give the same images"
    other = cls("train", root=root, verify=False, seed=1, **arguments)
    assert not torch.equal(other.images, data.images), "another seed draws another subset"


@pytest.mark.parametrize("name", LOADERS)
def test_one_epoch_of_hard_sharing_trains_on_every_loader(root, name):
    cls, arguments, channels = LOADERS[name]
    train = cls("train", root=root, verify=False, **arguments)
    val = cls("val", root=root, verify=False, num_images=4)
    torch.manual_seed(0)
    model = HardParameterSharing(SmallCNN(in_channels=channels, width=4, num_stages=2), train.tasks)
    history = fit(model, train, val, epochs=1, batch_size=4, progress=False)
    assert set(history.train_loss) == set(train.tasks) and history.best_epoch == 0
    assert all(len(v) == 1 and np.isfinite(v[0]) for v in history.train_loss.values())


@pytest.mark.parametrize("name", LOADERS)
def test_the_task_selection_and_label_controls_work_as_on_multishapes(root, name):
    cls, arguments, _ = LOADERS[name]
    full = cls("train", root=root, verify=False, **arguments)
    first = next(iter(full.tasks))
    only = cls("train", root=root, verify=False, tasks=[first], label_fraction=0.5, **arguments)
    assert list(only.tasks) == [first] and torch.equal(only.images, full.images)
    assert only.label_fraction(first) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown task"):
        cls("train", root=root, verify=False, tasks=["nope"], **arguments)


@pytest.mark.parametrize("name", LOADERS)
def test_arguments_out_of_range_are_refused_by_name(root, name):
    cls = LOADERS[name][0]
    with pytest.raises(ValueError, match="split must be one of"):
        cls("validation", root=root)
    with pytest.raises(ValueError, match="not both"):
        cls("train", root=root, num_images=5, full=True)
    with pytest.raises(ValueError, match="image_size"):
        cls("train", root=root, image_size=4)
    with pytest.raises(ValueError, match=r"num_images=1000 but this split has only \d+ images"):
        cls("train", root=root, verify=False, num_images=1000)


# ---------------------------------------------------------------------------------------------------------
# MultiMNIST and MultiFashion


def test_multimnist_follows_sener_and_koltuns_construction(root):
    data = MultiMNIST("train", full=True, root=root, verify=False, cache=False)
    items = mnist_pairs.read_idx_images(root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    labels = mnist_pairs.read_idx_labels(root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    assert len(data) == 50 and data.images.shape == (50, 1, 28, 28)  # 60 items: the last 10 are val
    assert torch.equal(data.targets["left"], labels[:50]), "with full=True the left items are in file order"
    for i in range(5):
        # the right item is one of the split's items: the one whose overlay gives exactly this image
        candidates = overlay(items[i].expand(50, 28, 28), items[:50])  # [50, 36, 36]
        resized = resize(candidates[:, None], 28, "nearest-exact").float() / 255  # [50, 1, 28, 28]
        matches = [j for j in range(50) if torch.equal(resized[j], data.images[i])]
        assert matches and labels[matches[0]] == data.targets["right"][i]


def test_the_overlay_is_the_pixelwise_maximum_on_a_36_pixel_canvas():
    left = torch.zeros(1, 28, 28, dtype=torch.uint8)
    right = torch.zeros(1, 28, 28, dtype=torch.uint8)
    left[0, 10, 10], right[0, 4, 4], right[0, 27, 27] = (
        100,
        200,
        50,
    )  # right's (4, 4) lands on left's (10, 10)
    canvas = overlay(left, right)
    assert canvas.shape == (1, 36, 36)
    assert canvas[0, 10, 10] == 200 and canvas[0, 33, 33] == 50 and canvas.sum() == 250


def test_val_is_carved_from_the_training_file_and_test_from_the_test_file(root):
    train = MultiMNIST("train", full=True, root=root, verify=False)
    val = MultiMNIST("val", full=True, root=root, verify=False)
    test = MultiMNIST("test", full=True, root=root, verify=False)
    labels = mnist_pairs.read_idx_labels(root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz")
    test_labels = mnist_pairs.read_idx_labels(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    assert (len(train), len(val), len(test)) == (50, 10, 20)
    assert torch.equal(val.targets["left"], labels[50:]) and torch.equal(test.targets["left"], test_labels)
    assert torch.equal(
        MultiMNIST("val", full=True, seed=3, root=root, verify=False).targets["left"], labels[50:]
    )


def test_multifashion_reads_its_own_folder_and_names_its_classes(root):
    data = MultiFashion("test", num_images=8, root=root, verify=False)
    assert data.tasks["right"].class_names[9] == "Ankle boot"
    mnist = MultiMNIST("test", num_images=8, root=root, verify=False)
    assert not torch.equal(data.images, mnist.images)


def test_other_image_sizes_are_resized(root):
    data = MultiMNIST("train", num_images=4, image_size=16, root=root, verify=False)
    assert data.images.shape == (4, 1, 16, 16)


# ---------------------------------------------------------------------------------------------------------
# CIFAR-100


def test_cifar100_has_coarse_and_fine_labels_from_the_archive(root):
    data = CIFAR100("val", full=True, root=root, verify=False)
    with open(root / "cifar-100-python" / "train", "rb") as f:
        batch = pickle.load(f)
    assert len(data) == 5 and list(data.tasks) == ["coarse", "fine"]  # the last tenth of 50 images
    assert data.targets["fine"].tolist() == batch[b"fine_labels"][45:]
    assert torch.equal(data.targets["coarse"], data.targets["fine"] // 5)
    pixels = torch.from_numpy(batch[b"data"][45]).view(3, 32, 32).float() / 255  # red, green, blue planes
    assert torch.equal(data.images[0], pixels)
    assert data.tasks["coarse"].class_names[3] == "coarse_3" and data.tasks["fine"].num_outputs == 100
    assert len(CIFAR100("train", full=True, root=root, verify=False)) == 45
    assert len(CIFAR100("test", full=True, root=root, verify=False)) == 20


def test_cifar100_refuses_a_pickle_that_would_run_code(tmp_path):
    folder = write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(folder / "train", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(CorruptDataError, match=r"refusing to load builtins\.print"):
        CIFAR100("train", num_images=2, root=tmp_path, verify=False)


def test_cifar100_labels_that_disagree_are_a_corrupt_file(tmp_path):
    folder = write_cifar(tmp_path)
    with open(folder / "train", "rb") as f:
        batch = pickle.load(f)
    batch[b"fine_labels"][1] = batch[b"fine_labels"][0]
    batch[b"coarse_labels"][1] = (batch[b"coarse_labels"][0] + 1) % 20  # one fine class, two coarse classes
    with open(folder / "train", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(CorruptDataError, match="two coarse classes"):
        CIFAR100("train", num_images=2, root=tmp_path, verify=False)


# ---------------------------------------------------------------------------------------------------------
# CelebA


def test_celeba_groupings_cover_the_40_attributes(root):
    regions = CelebA("train", num_images=6, root=root, verify=False)
    assert list(regions.tasks) == list(REGIONS) and regions.tasks["gender"].kind == "binary"
    assert regions.tasks["around_head"].num_outputs == 13
    one = CelebA("train", num_images=6, grouping="attributes", root=root, verify=False)
    each = CelebA("train", num_images=6, grouping="each", root=root, verify=False)
    assert one.targets["attributes"].shape == (6, 40) and len(each.tasks) == 40
    smiling = ATTRIBUTES.index("Smiling")
    assert torch.equal(each.targets["smiling"], one.targets["attributes"][:, smiling])
    assert torch.equal(regions.targets["mouth"][:, 1], one.targets["attributes"][:, smiling])
    assert torch.equal(regions.targets["gender"], each.targets["male"])
    with pytest.raises(ValueError, match="grouping must be one of"):
        CelebA("train", grouping="pairs", root=root)
    with pytest.raises(ValueError, match="label_noise"):
        CelebA("train", label_noise=0.1, root=root)


def test_celeba_reads_the_official_partition_and_crops_the_central_square(root):
    train = CelebA("train", full=True, grouping="attributes", root=root, verify=False)
    val = CelebA("val", full=True, grouping="attributes", root=root, verify=False)
    test = CelebA("test", full=True, grouping="attributes", root=root, verify=False)
    assert (len(train), len(val), len(test)) == (18, 6, 6)
    lines = (root / "celeba" / "list_attr_celeba.txt").read_text().splitlines()[2:]
    first_val = torch.tensor([(int(v) + 1) / 2 for v in lines[18].split()[1:]])
    assert torch.equal(val.targets["attributes"][0], first_val)
    image = train.images[0]  # [3, 32, 32]
    assert image.shape == (3, 32, 32)
    top, bottom = image[:, 0], image[:, -1]  # [3, 32] the first and last rows
    assert top[0].max() < 0.65 and bottom[2].max() < 0.65, "the red and blue bands lie outside the crop"
    smiling = train.targets["attributes"][:, ATTRIBUTES.index("Smiling")] == 1
    green = train.images[:, 1, 14, 16] - train.images[:, 0, 14, 16]  # the patch is green when smiling
    assert bool((green[smiling] > 0.5).all()) and bool((green[~smiling].abs() < 0.1).all())


def test_a_missing_or_broken_celeba_image_is_named(tmp_path):
    folder = write_celeba(tmp_path, count=10)
    (folder / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(MissingDataError, match=r"000002\.jpg") as error:
        CelebA("train", full=True, root=tmp_path, verify=False)
    assert "download=True" in str(error.value)
    data = (folder / "img_align_celeba" / "000003.jpg").read_bytes()
    (folder / "img_align_celeba" / "000002.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(CorruptDataError, match=r"000002\.jpg cannot be read"):
        CelebA("train", full=True, root=tmp_path, verify=False)


def test_a_damaged_celeba_annotation_file_is_reported(tmp_path):
    folder = write_celeba(tmp_path, count=10)
    path = folder / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace(" 1", " 2", 1))
    with pytest.raises(CorruptDataError, match=r"list_attr_celeba\.txt cannot be read.*neither -1 nor 1"):
        CelebA("train", num_images=2, root=tmp_path, verify=False)


# ---------------------------------------------------------------------------------------------------------
# Files: the data folder, missing and corrupt files, downloads, the cache


def test_the_data_folder_is_the_argument_then_the_environment_then_the_default(root, monkeypatch):
    monkeypatch.delenv("MTLCOURSE_DATA", raising=False)
    assert data_root() == Path("~/.cache/mtlcourse").expanduser()
    monkeypatch.setenv("MTLCOURSE_DATA", str(root))
    assert data_root() == root and data_root("/elsewhere") == Path("/elsewhere")
    assert len(MultiMNIST("test", num_images=3, verify=False)) == 3


@pytest.mark.parametrize(
    ("cls", "missing"),
    [
        (MultiMNIST, "MNIST/raw/t10k-labels-idx1-ubyte.gz"),
        (MultiFashion, "FashionMNIST/raw/train-images-idx3-ubyte.gz"),
        (CIFAR100, "cifar-100-python/meta"),
        (CelebA, "celeba/list_eval_partition.txt"),
        (CelebA, "celeba/img_align_celeba"),
    ],
)
def test_a_missing_file_names_its_path_and_the_call_that_gets_it(tmp_path, cls, missing):
    write_mnist(tmp_path, "MNIST", train=12, test=6)
    write_mnist(tmp_path, "FashionMNIST", train=12, test=6)
    write_cifar(tmp_path, train=10, test=4)
    write_celeba(tmp_path, count=5)
    path = tmp_path / missing
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    with pytest.raises(MissingDataError) as error:
        cls("test", num_images=2, root=tmp_path, verify=False)
    message = str(error.value)
    assert str(path) in message, "the message must give the exact path where the file belongs"
    assert f"{cls.__name__}(root={str(tmp_path)!r}, download=True)" in message
    assert isinstance(error.value, FileNotFoundError)


def test_nothing_at_all_is_a_clear_error_too(tmp_path):
    with pytest.raises(MissingDataError, match=r"4 file\(s\) missing") as error:
        MultiMNIST("train", root=tmp_path)
    assert "https://" in str(error.value)


def test_with_verification_generated_or_damaged_files_are_refused(tmp_path):
    folder = write_mnist(tmp_path, "MNIST")
    with pytest.raises(
        CorruptDataError, match=r"MD5 is [0-9a-f]{32}, expected f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ):
        MultiMNIST("train", num_images=4, root=tmp_path)  # verify=True: generated files are not the originals
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte\.gz is corrupt.*download=True"):
        MultiMNIST("train", num_images=4, root=tmp_path)
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte\.gz cannot be read"):
        MultiMNIST("train", num_images=4, root=tmp_path, verify=False)  # unreadable even unverified


def test_verification_checks_the_md5s_torchvision_lists(tmp_path, monkeypatch):
    write_cifar(tmp_path)
    expected = {
        name: files_module.md5sum(tmp_path / "cifar-100-python" / name) for name in ("train", "test", "meta")
    }
    monkeypatch.setattr(
        "mtlcourse.data.cifar100.MD5", expected
    )  # as if the generated files were the originals
    assert len(CIFAR100("test", num_images=3, root=tmp_path)) == 3
    with open(tmp_path / "cifar-100-python" / "meta", "ab") as f:
        f.write(b"\0")
    with pytest.raises(CorruptDataError, match=r"cifar-100-python/meta is corrupt"):
        CIFAR100("test", num_images=3, root=tmp_path)


def test_download_uses_torchvision_and_an_offline_failure_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_mnist(root, download):  # what torchvision does: the four files into <root>/MNIST/raw
        calls.append((root, download))
        write_mnist(Path(root), "MNIST")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    assert len(MultiMNIST("test", num_images=5, root=tmp_path, download=True, verify=False)) == 5
    assert calls == [(str(tmp_path), True)]

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(
        MissingDataError, match=r"download failed \(URLError.*copy them to .*cifar-100-python"
    ):
        CIFAR100("test", root=tmp_path, download=True)


def test_the_cache_is_used_and_keyed_by_every_parameter(tmp_path, monkeypatch):
    write_mnist(tmp_path, "MNIST")
    first = MultiMNIST("train", num_images=6, root=tmp_path, verify=False)
    cached = sorted((tmp_path / "mtlcourse-cache").glob("multimnist-*.pt"))
    assert len(cached) == 1 and "num_images=6" in cached[0].name and "seed=0" in cached[0].name

    def unreadable(path):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnist_pairs, "read_idx_images", unreadable)
    second = MultiMNIST("train", num_images=6, root=tmp_path, verify=False)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.targets["right"], second.targets["right"])
    for changed in ({"num_images": 5}, {"seed": 1}, {"image_size": 16}):
        with pytest.raises(AssertionError, match="cache should have been used"):
            MultiMNIST("train", **{"num_images": 6, **changed}, root=tmp_path, verify=False)
    monkeypatch.undo()
    MultiMNIST("train", num_images=6, root=tmp_path, verify=False, cache=False)
    assert len(list((tmp_path / "mtlcourse-cache").glob("*.pt"))) == 1, "cache=False writes nothing"


def test_a_replaced_source_file_changes_the_cache_key(tmp_path):
    folder = write_mnist(tmp_path, "MNIST")
    sources = [folder / "train-images-idx3-ubyte.gz"]
    before = cache_file(tmp_path, "multimnist", {"split": "train"}, sources)
    write_mnist(tmp_path, "MNIST", train=66)
    assert cache_file(tmp_path, "multimnist", {"split": "train"}, sources) != before


def test_an_unreadable_cache_is_rebuilt(tmp_path):
    write_cifar(tmp_path)
    first = CIFAR100("test", num_images=4, root=tmp_path, verify=False)
    (cached,) = (tmp_path / "mtlcourse-cache").glob("cifar100-*.pt")
    cached.write_bytes(b"not a cache")
    again = CIFAR100("test", num_images=4, root=tmp_path, verify=False)
    assert torch.equal(first.images, again.images)


def test_a_verified_cache_skips_the_checksums_and_an_unverified_one_is_never_served_verified(
    tmp_path, monkeypatch
):
    write_cifar(tmp_path)
    folder = tmp_path / "cifar-100-python"
    CIFAR100("test", num_images=3, root=tmp_path, verify=False)  # caches tensors built from unverified files
    with pytest.raises(CorruptDataError, match="MD5"):
        CIFAR100("test", num_images=3, root=tmp_path)  # verify=True does not read the unverified cache
    expected = {name: files_module.md5sum(folder / name) for name in ("train", "test", "meta")}
    monkeypatch.setattr("mtlcourse.data.cifar100.MD5", expected)
    first = CIFAR100("test", num_images=3, root=tmp_path)  # verified, then cached

    def no_checksum(path, chunk=0):
        raise AssertionError("a verified cache needs no checksum")

    monkeypatch.setattr(files_module, "md5sum", no_checksum)
    assert torch.equal(CIFAR100("test", num_images=3, root=tmp_path).images, first.images)
