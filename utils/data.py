"""Fashion-MNIST, found offline first, and batches that live on the device.

Introduced in Chapter 1 (01a). `fashion_mnist` looks, in order, in

1. ``$COURSE_DATA_DIR`` if set, else the repository's ``data/`` folder;
2. the files of Debian's package ``dataset-fashion-mnist`` (``dpkg -L dataset-fashion-mnist``);
3. a torchvision download into ``data/`` (needs internet).

The raw IDX files are checked by size and SHA-256 of their decompressed bytes, so a recompressed
``.gz`` (Debian's are) is accepted and a truncated, corrupt or foreign file is not: it is skipped with a
one-line warning naming it, and the next source is tried. The download gives up after
``DOWNLOAD_TIMEOUT`` seconds without an answer and removes the folders it made. When no source works, the
error names every rejected file and the three remedies. Run ``python -m utils.data`` to see which source
is used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .checkpoints import warn

REPO_ROOT = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCE_SUBFOLDERS = ("", "fashion-mnist", "FashionMNIST/raw")  # where the files may sit inside a source folder
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Per-pixel statistics of the training images (scaled to [0, 1]).
MEAN, STD = 0.2860, 0.3530

# name -> (decompressed size in bytes, sha256 of the decompressed bytes)
_FILES = {
    "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
_PREFIX = {"train": "train", "test": "t10k"}
DOWNLOAD_TIMEOUT = 20  # seconds a download may wait for the server to answer before giving up
_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
_rejected: dict[Path, str] = {}  # file → why it was skipped (each is warned about once)


class DataNotFoundError(FileNotFoundError):
    """No source of Fashion-MNIST could be used; the message lists the three remedies."""


def data_dir() -> Path:
    """Where the course keeps data: ``$COURSE_DATA_DIR`` if set, else ``data/`` in the repository."""
    return Path(os.environ.get("COURSE_DATA_DIR") or REPO_ROOT / "data")


def _problem(raw: bytes, name: str) -> str | None:
    """Why ``raw`` is not the IDX file ``name`` (None when it is)."""
    size, digest = _FILES[name]
    if len(raw) != size:
        return f"{len(raw):,} bytes instead of {size:,} (truncated or another file)"
    if hashlib.sha256(raw).hexdigest() != digest:
        return "wrong checksum (corrupt, or another data set)"
    return None


def _read_verified(folder: Path, name: str) -> bytes | None:
    """The decompressed bytes of ``name`` (raw or .gz) under ``folder``, or None if absent or wrong; a file
    that is there but wrong is skipped with a warning and remembered for the final error."""
    for sub in SOURCE_SUBFOLDERS:
        for suffix in ("", ".gz"):
            path = folder / sub / (name + suffix)
            if not path.is_file():
                continue
            try:
                raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
                problem = _problem(raw, name)
            except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; EOFError: truncated
                kind = "zlib.error" if isinstance(error, zlib.error) else type(error).__name__
                problem = f"unreadable ({kind}: {error})"
            if problem is None:
                return raw
            if _rejected.get(path) != problem:
                warn(f"skipping {path}: {problem}")
                _rejected[path] = problem
    return None


def _parse_idx(raw: bytes) -> np.ndarray:
    """An IDX file (big-endian header: magic, dims) as a uint8 array."""
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _download(folder: Path) -> None:
    """torchvision's download into ``folder/FashionMNIST/raw``, giving up after `DOWNLOAD_TIMEOUT` seconds of
    silence; a failed or interrupted download removes the folders it created (and what it wrote in them)."""
    from torchvision.datasets import FashionMNIST

    created = [p for p in (folder, folder / "FashionMNIST", folder / "FashionMNIST" / "raw") if not p.exists()]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # torchvision's urlopen has none: a silent server hangs forever
    try:
        FashionMNIST(str(folder), download=True)
    except BaseException:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        socket.setdefaulttimeout(previous)


def _locate() -> tuple[Path, str]:
    """The first folder holding all four verified files, and a description of that source."""
    candidates = [(data_dir(), "$COURSE_DATA_DIR" if os.environ.get("COURSE_DATA_DIR") else "data/"),
                  (DEBIAN_DIR, "Debian package dataset-fashion-mnist")]
    for folder, label in candidates:
        if all([_read_verified(folder, name) is not None for name in _FILES]):  # a list: check (and warn) all four
            return folder, label
    try:
        _download(data_dir())
        failure = None if all([_read_verified(data_dir(), name) is not None for name in _FILES]) else \
            "the downloaded files did not verify"
    except Exception as error:  # no internet, a silent server, no write access, no torchvision
        failure = f"{type(error).__name__}: {error}"
    if failure is None:
        return data_dir(), "torchvision download"
    rejected = "".join(f"\n  - {path}: {problem}" for path, problem in _rejected.items())
    raise DataNotFoundError(
        "No usable copy of Fashion-MNIST was found. Any one of these fixes it:\n"
        f"  1. put the four IDX files (train-images-idx3-ubyte.gz, ...) in {data_dir()} "
        "or point $COURSE_DATA_DIR at a folder holding them;\n"
        "  2. install Debian's package: sudo apt-get install dataset-fashion-mnist;\n"
        "  3. connect to the internet and rerun: torchvision downloads it into data/.\n"
        + (f"Files found but rejected (delete or replace them):{rejected}\n" if rejected else "")
        + f"(The download failed with: {failure})"
    ) from None


def source() -> str:
    """A line saying where Fashion-MNIST is read from."""
    folder, label = _locate()
    return f"Fashion-MNIST from {label} ({folder})"


def fashion_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` in {"train", "test"} as ``(images, labels)``.

    Returns:
        images: uint8 tensor ``N×1×28×28`` (60 000 train, 10 000 test);
        labels: int64 tensor ``N`` with values 0–9 (names in `CLASSES`).
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if split not in _cache:
        folder, _ = _locate()
        prefix = _PREFIX[split]
        images = _parse_idx(_read_verified(folder, f"{prefix}-images-idx3-ubyte"))
        labels = _parse_idx(_read_verified(folder, f"{prefix}-labels-idx1-ubyte"))
        _cache[split] = (torch.from_numpy(images.copy()).unsqueeze(1),
                         torch.from_numpy(labels.astype(np.int64)))
    images, labels = _cache[split]
    return images.clone(), labels.clone()


def subset(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int = 0):
    """A class-balanced random subset of ``size`` items (all of them when size is None or too big)."""
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have one row per item: got {len(images)} and {len(labels)}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer (or None for everything), not {size!r}")
    if size is None or size >= len(labels):
        return images, labels
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = -(-size // len(classes))
    picks = [torch.nonzero(labels == c).flatten() for c in classes]
    picks = [p[torch.randperm(len(p), generator=generator)[:per_class]] for p in picks]
    keep = torch.cat(picks)[torch.randperm(per_class * len(classes), generator=generator)][:size]
    return images[keep], labels[keep]


def standardize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float, zero mean and unit variance under the training-set statistics."""
    if not torch.is_tensor(images) or images.dtype != torch.uint8:
        raise TypeError(f"standardize takes uint8 images (0–255, as fashion_mnist returns them), not "
                        f"{images.dtype if torch.is_tensor(images) else type(images).__name__}: float images "
                        "are already scaled, so standardising them again would be wrong; pass the uint8 images")
    return (images.float() / 255 - MEAN) / STD


class ImageDataset(torch.utils.data.Dataset):
    """The map-style Dataset every PyTorch pipeline starts from (Chapter 1c, section 9): a length and an indexer.

    Holds uint8 images ``N×C×H×W`` and labels ``N``; item i is ``(transform(image_i), label_i)``, the image as
    float in [0, 1] when no transform is given. Defined in a module, not a notebook, so that DataLoader workers
    started with "spawn" (macOS, Windows) can import it.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        if len(images) != len(labels):
            raise ValueError(f"images and labels must have one row per item: got {len(images)} and {len(labels)}")
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        image = self.transform(image) if self.transform is not None else image.float() / 255
        return image, int(self.labels[index])


def stack_batch(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader's collate_fn: a list of ``(image, label)`` → ``(images B×C×H×W, labels B)``."""
    if not samples:
        raise ValueError("stack_batch got an empty list: the DataLoader's batch_size must be ≥ 1")
    images, labels = zip(*samples)
    return torch.stack(images), torch.tensor(labels)


def random_shift_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Per-image random translation by up to ``pad`` pixels and horizontal flip, in one batched op.

    ``x`` is ``B×C×H×W`` on any device, ``generator`` on the same device: the random draws are made where the
    images are, so a training step never waits for a host-to-device copy. One gather does what
    RandomCrop(padding)+RandomHorizontalFlip do image by image, so augmentation costs nothing next to the model.
    """
    if generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device.type} but the images are on {x.device.type}: "
                         "draw on the images' device, torch.Generator(device=x.device), so no copy waits on it")
    b, c, h, w = x.shape
    shifts = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=x.device)
    flips = torch.rand(b, generator=generator, device=x.device) < 0.5
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=x.device) + shifts[0, :, None]            # B×H
    cols = torch.arange(w, device=x.device) + shifts[1, :, None]            # B×W
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    # Every axis indexed, so the result is B×C×H×W in the standard layout: a permuted (channels_last) batch would
    # send every convolution down oneDNN's NHWC kernels, one of which crashes on AVX2 CPUs (utils.runtime).
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


class DeviceLoader:
    """Mini-batches drawn from tensors that stay on the device: no workers, no per-image Python.

    Iterating yields ``(inputs, labels)``; inputs are ``prepare(images[batch])`` (float, standardised by
    default), augmented by `random_shift_flip` when ``augment`` is True. Shuffling is seeded by
    ``seed`` and the epoch number, so every run sees the same batches.
    """

    def __init__(self, images, labels, batch_size=256, *, shuffle=False, augment=False, device=None,
                 prepare=standardize, seed=0, drop_last=False):
        if not torch.is_tensor(images) or not torch.is_tensor(labels):
            raise TypeError("DeviceLoader takes two tensors, images (N×…) and labels (N×…)")
        if images.ndim == 0 or labels.ndim == 0 or len(images) != len(labels):
            raise ValueError(f"images and labels must have one row per item: got {tuple(images.shape)} images "
                             f"and {tuple(labels.shape)} labels")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.device = torch.device(device or "cpu")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}, but torch sees no CUDA GPU here: pass utils.runtime.device() (the "
                             "fastest device present) or leave device out for the CPU")
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.prepare, self.seed, self.drop_last = prepare, seed, drop_last
        self.epoch = 0

    def __len__(self):
        full, rest = divmod(len(self.labels), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self):
        # Drawn on the device: on a GPU the shuffle and the augmentation never copy from the host.
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        n = len(self.labels)
        order = (torch.randperm(n, generator=generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.prepare(self.images[idx])
            if self.augment:
                x = random_shift_flip(x, generator)
            yield x, self.labels[idx]



class PlainFashionMNIST(Dataset):
    """Image by image, as most tutorials do: PIL-free uint8 tensors through a transforms.v2 pipeline."""

    def __init__(self, images, labels):
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(28, padding=2), v2.RandomHorizontalFlip(),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize([MEAN], [STD])])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


if __name__ == "__main__":
    print(source())
    for split in ("train", "test"):
        x, y = fashion_mnist(split)
        print(f"{split}: images {tuple(x.shape)} {x.dtype}, labels {tuple(y.shape)} {y.dtype}")
