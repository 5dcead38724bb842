"""The data sets petri knows: official file names, checksums, shapes, citations."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    format: str  # a key of dataset.FORMATS: "idx", "cifar-python", "svhn-mat", "npz", "folder"
    files: tuple[DataFile, ...]
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # (C, H, W) of one image
    n_train: int
    n_test: int
    citation: str
    license: str
    labels: str = "labels"  # which labels a format reads (CIFAR-100: fine_labels or coarse_labels)
    variants: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (name, labels, classes): "cifar-100/coarse"
    variant: str | None = None  # the one chosen
    source: str | None = None  # a user data set: its file or folder
    checksum_: str | None = None  # a user data set: sha256 of its arrays

    def file(self, name: str) -> DataFile:
        return next(f for f in self.files if f.name == name)

    @property
    def key(self) -> str:
        """What names this data set in a study, a cell and the array cache."""
        if self.source is not None:
            return self.source
        return self.name + (f"/{self.variant}" if self.variant else "")

    @property
    def identity(self) -> list[str]:
        """What its cells' hashes cover: the official files' MD5s, or a user set's content checksum."""
        return [self.checksum_] if self.checksum_ else [f.md5 for f in self.files] + ([self.labels] if self.variant else [])


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

KMNIST = DatasetSpec(
    name="kmnist",
    format="idx",
    files=_idx_files(
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/", "https://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
    ),
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    shape=(1, 28, 28),
    n_train=60000,
    n_test=10000,
    citation='T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb, K. Yamamoto, D. Ha, "Deep Learning for '
    'Classical Japanese Literature", arXiv:1812.01718, 2018 (KMNIST, ROIS-DS CODH).',
    license="CC BY-SA 4.0",
)

CIFAR100_FINE = tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear
pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split())
CIFAR100_COARSE = tuple("""aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores large_man-made_outdoor_things
large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people
reptiles small_mammals trees vehicles_1 vehicles_2""".split())

CIFAR100 = DatasetSpec(
    name="cifar-100",
    format="cifar-python",
    files=(
        DataFile(
            "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
            ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
        ),
    ),
    classes=CIFAR100_FINE,
    shape=(3, 32, 32),
    n_train=50000,
    n_test=10000,
    citation='A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.',
    license="see https://www.cs.toronto.edu/~kriz/cifar.html",
    labels="fine_labels",
    variants=(("coarse", "coarse_labels", CIFAR100_COARSE),),
)

SVHN = DatasetSpec(
    name="svhn",
    format="svhn-mat",
    files=(
        DataFile("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373",
                 ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",)),
        DataFile("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3",
                 ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",)),
    ),
    classes=tuple(str(d) for d in range(10)),  # the files' label 10 is digit 0
    shape=(3, 32, 32),
    n_train=73257,
    n_test=26032,
    citation='Y. Netzer, T. Wang, A. Coates, A. Bissacco, B. Wu, A. Y. Ng, "Reading Digits in Natural Images '
    'with Unsupervised Feature Learning", NIPS Workshop on Deep Learning and Unsupervised Feature Learning, 2011.',
    license="non-commercial use (see http://ufldl.stanford.edu/housenumbers/)",
)

# Official MD5s of the batches inside the CIFAR archives (cifar-10-batches-py/, cifar-100-python/).
CIFAR_BATCH_MD5 = {
    "c58f30108f718f92721af3b95e74349a": {  # cifar-10-python.tar.gz
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "eb9058c3a382ffc7106e4002c42a8d85": {  # cifar-100-python.tar.gz
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    },
}

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10, KMNIST, CIFAR100, SVHN)}

# a user's own data set given a name (``petri.register_dataset``, from a notebook or a study's plugin):
# name -> the absolute path of its .npz file or image folder, read like any user data set
NAMED: dict[str, str] = {}


def registered(key: str) -> DatasetSpec:
    """A registered data set by name, or one of its label variants ("cifar-100/coarse")."""
    name, _, variant = key.partition("/")
    if name not in DATASETS:
        raise DataError(f"unknown data set {key!r}; known data sets: {', '.join(DATASETS)}, or a path to your "
                        ".npz file or image folder")
    spec = DATASETS[name]
    if not variant:
        return spec
    for v, labels, classes in spec.variants:
        if v == variant:
            return replace(spec, labels=labels, classes=classes, variant=v)
    known = ", ".join(f"{name}/{v}" for v, _, _ in spec.variants) or "none"
    raise DataError(f"data set {key!r}: {name} has no label variant {variant!r}; variants: {known}")
