"""The data sets petri knows: official file names, checksums, shapes, citations."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError


@dataclass(frozen=True)
class DataFile:
    """One official file: its name under ``<root>/<dataset>/``, MD5 and download URLs."""

    name: str
    md5: str
    urls: tuple[str, ...]  # official first, then mirrors


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str  # "idx" (gzip IDX files) or "cifar-python" (pickled batches in a tar.gz)
    files: tuple[DataFile, ...]
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # (C, H, W) of one image
    n_train: int
    n_test: int
    citation: str
    license: str

    def file(self, name: str) -> DataFile:
        return next(f for f in self.files if f.name == name)


def _idx_files(bases: tuple[str, ...], md5s: dict[str, str]) -> tuple[DataFile, ...]:
    return tuple(DataFile(n, md5, tuple(b + n for b in bases)) for n, md5 in md5s.items())


MNIST = DatasetSpec(
    name="mnist",
    format="idx",
    files=_idx_files(
        ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    classes=tuple(str(d) for d in range(10)),
    shape=(1, 28, 28),
    n_train=60000,
    n_test=10000,
    citation='Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits".',
    license="CC BY-SA 3.0",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    format="idx",
    files=_idx_files(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    shape=(1, 28, 28),
    n_train=60000,
    n_test=10000,
    citation='H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for '
    'Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017.',
    license="MIT",
)

CIFAR10 = DatasetSpec(
    name="cifar-10",
    format="cifar-python",
    files=(
        DataFile(
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        ),
    ),
    classes=("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
    shape=(3, 32, 32),
    n_train=50000,
    n_test=10000,
    citation='A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.',
    license="see https://www.cs.toronto.edu/~kriz/cifar.html",
)

# Official MD5s of the batches inside the CIFAR-10 archive (cifar-10-batches-py/).
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10)}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}"
        ) from None
