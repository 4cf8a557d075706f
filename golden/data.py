"""Data sets for golden training, loaded whole into memory as float tensors in [0, 1].

Every loader returns a :class:`Dataset`: ``train_x``/``test_x`` float32 tensors
of shape (N, C, H, W) with pixel values in [0, 1] (the domain of the INT4 input
quantizer, SPEC section 1) and ``train_y``/``test_y`` int64 labels.

- ``digits``: scikit-learn's bundled 8x8 digits (1797 images, values 0..16
  divided by 16), split once into 1437 train / 360 test images by a fixed
  permutation (seed 0, independent of the training seed).
- ``mnist``, ``fashion-mnist``: the four idx files (``.gz`` or uncompressed)
  in ``--data-dir``.
- ``cifar10``: the python pickle batches (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) or the binary batches (``data_batch_1.bin`` ..,
  ``test_batch.bin``) in ``--data-dir`` or in its ``cifar-10-batches-py`` /
  ``cifar-10-batches-bin`` subfolder.
"""

import dataclasses
import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["Dataset", "DATASETS", "DataError", "load_dataset"]


class DataError(ValueError):
    """A data set cannot be loaded (missing or malformed files); the message says what is expected."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """An in-memory image classification data set.

    Attributes
    ----------
    name : str
    train_x, test_x : torch.Tensor
        float32, (N, C, H, W), values in [0, 1].
    train_y, test_y : torch.Tensor
        int64 labels in ``0..num_classes-1``.
    num_classes : int
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self):
        """(C, H, W) of one image."""
        return tuple(self.train_x.shape[1:])


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header_size}-byte idx header")
    # Plain ints, so the message reads (10000, 28, 28), not (np.int64(10000), ...).
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    expected = math.prod(dims)
    if data.size != expected:
        state = "truncated" if data.size < expected else "longer than its header says"
        raise DataError(
            f"{path} is {state}: its header says {dims}, {expected} data bytes "
            f"({header_size + expected} bytes in all), the file has {data.size} ({len(raw)} in all)"
        )
    return data.reshape(dims)


def _find(data_dir, stem, exts):
    for ext in exts:
        p = data_dir / (stem + ext)
        if p.is_file():
            return p
    return None


def _require_dir(name, data_dir, expected):
    if data_dir is None:
        raise DataError(f"dataset {name!r} needs --data-dir, a directory holding: {', '.join(expected)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"--data-dir {str(data_dir)!r} is not a directory; dataset {name!r} expects: {', '.join(expected)}"
        )
    return data_dir


def _load_idx_set(name, data_dir):
    expected = [f + "[.gz]" for f in _IDX_FILES]
    data_dir = _require_dir(name, data_dir, expected)
    paths = [_find(data_dir, f, (".gz", "")) for f in _IDX_FILES]
    missing = [e for e, p in zip(expected, paths) if p is None]
    if missing:
        raise DataError(f"dataset {name!r}: {data_dir} lacks {', '.join(missing)} (expected: {', '.join(expected)})")
    tx, ty, vx, vy = (_read_idx(p) for p in paths)
    if tx.ndim != 3 or vx.ndim != 3 or ty.ndim != 1 or vy.ndim != 1 or len(tx) != len(ty) or len(vx) != len(vy):
        raise DataError(f"dataset {name!r}: idx files in {data_dir} have inconsistent shapes")

    def images(a):
        return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)

    return Dataset(
        name, images(tx), torch.from_numpy(ty.astype(np.int64)), images(vx), torch.from_numpy(vy.astype(np.int64)), 10
    )


def _load_digits(name, data_dir):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = 360
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(name, x[train], y[train], x[test], y[test], 10)


_CIFAR_PY = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_CIFAR_BIN = [f + ".bin" for f in _CIFAR_PY]


def _load_cifar10(name, data_dir):
    expected = [
        f"{', '.join(_CIFAR_PY)} (python) or {', '.join(_CIFAR_BIN)} (binary), "
        "directly or in cifar-10-batches-py/ or cifar-10-batches-bin/"
    ]
    data_dir = _require_dir(name, data_dir, expected)
    for sub in (data_dir, data_dir / "cifar-10-batches-py", data_dir / "cifar-10-batches-bin"):
        if all((sub / f).is_file() for f in _CIFAR_PY):
            batches = []
            for f in _CIFAR_PY:
                try:
                    with open(sub / f, "rb") as fh:
                        d = pickle.load(fh, encoding="bytes")
                    batches.append(
                        (
                            np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                            np.asarray(d[b"labels"], dtype=np.int64),
                        )
                    )
                except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
                    raise DataError(f"cannot read CIFAR-10 batch {sub / f}: {e}") from None
            break
        if all((sub / f).is_file() for f in _CIFAR_BIN):
            batches = []
            for f in _CIFAR_BIN:
                raw = np.fromfile(sub / f, dtype=np.uint8)
                if raw.size % 3073:
                    raise DataError(f"{sub / f} is not a CIFAR-10 binary batch (size {raw.size})")
                raw = raw.reshape(-1, 3073)
                batches.append((raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)))
            break
    else:
        present = sorted(p.name for p in data_dir.iterdir())[:10]
        raise DataError(
            f"dataset {name!r}: {data_dir} lacks the CIFAR-10 batches; expected {expected[0]}"
            f" (found: {', '.join(present) or 'nothing'})"
        )

    def images(a):
        return torch.from_numpy(a.astype(np.float32) / 255.0)

    tx = np.concatenate([b[0] for b in batches[:5]])
    ty = np.concatenate([b[1] for b in batches[:5]])
    return Dataset(name, images(tx), torch.from_numpy(ty), images(batches[5][0]), torch.from_numpy(batches[5][1]), 10)


#: Data set name -> loader(name, data_dir).
DATASETS = {
    "digits": _load_digits,
    "mnist": _load_idx_set,
    "fashion-mnist": _load_idx_set,
    "cifar10": _load_cifar10,
}


def load_dataset(name, data_dir=None):
    """Load a data set by name (see the module docstring); raises :class:`DataError`."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name](name, data_dir)
