"""Data sets: real MNIST / Fashion-MNIST, CIFAR-10 format, cache, downloads, bad files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_line

import petri.data as D
from petri.data import cache, dataset
from petri.data.registry import CIFAR10, MNIST, DataFile
from petri.errors import DataError

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist(mnist):
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.train_x.dtype == torch.uint8
    assert mnist.test_x.shape == (10000, 1, 28, 28)
    assert mnist.train_y.dtype == torch.int64
    assert mnist.train_y.bincount().tolist() == MNIST_TRAIN
    assert mnist.test_y.bincount().tolist() == MNIST_TEST
    assert abs(mnist.train_x.double().mean().item() - 33.318) < 1e-3


def test_real_fashion_mnist():
    ds = D.load("fashion-mnist")
    assert ds.train_x.shape == (60000, 1, 28, 28)
    assert ds.train_y.bincount().tolist() == [6000] * 10
    assert ds.test_y.bincount().tolist() == [1000] * 10
    assert ds.spec.classes[9] == "Ankle boot"


def test_verify_real(shared_data):
    s = D.verify("mnist", shared_data)
    assert s["train_per_class"] == MNIST_TRAIN and s["test_per_class"] == MNIST_TEST


def test_second_load_uses_cache(mnist, monkeypatch):
    def no_parse(*a, **k):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(dataset, "_parse", no_parse)
    again = D.load("mnist")
    assert torch.equal(again.train_x, mnist.train_x)


def test_corrupt_cache_is_rebuilt(mnist):
    folder = next(Path(cache.cache_dir()).glob("mnist-*"))
    arr = np.load(folder / "train_x.npy")
    arr[0, 0, 0, 0] ^= 0xFF  # flip bits in the cached copy
    np.save(folder / "train_x.npy", arr)
    again = D.load("mnist")
    assert torch.equal(again.train_x, mnist.train_x)
    (folder / "test_y.npy").write_bytes(b"garbage")
    assert torch.equal(D.load("mnist").test_y, mnist.test_y)


def _copy_mnist(src: Path, dst: Path) -> Path:
    (dst / "mnist").mkdir(parents=True)
    for f in MNIST.files:
        shutil.copy(src / "mnist" / f.name, dst / "mnist" / f.name)
    return dst


def _spec_for(folder: Path, name="mnist-test") -> D.DatasetSpec:
    """A spec whose checksums match the (possibly altered) files in folder/<name>."""
    files = tuple(DataFile(f.name, D.sources.md5sum(folder / name / f.name), ()) for f in MNIST.files)
    return replace(MNIST, name=name, files=files)


def _write_idx(path: Path, magic: int, arr: np.ndarray):
    header = struct.pack(">ii", magic, len(arr)) + (struct.pack(">ii", *arr.shape[1:]) if magic == 2051 else b"")
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_missing_files_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PETRI_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"mnist: missing train-images.* \(searched .*PETRI_DATA=.*\); `petri data fetch "
                                         r"mnist` downloads them into .*xdg-cache.*/petri/datasets/mnist"):
        D.verify("mnist")
    with pytest.raises(DataError, match="missing .*train-images"):
        D.load("mnist", allow_download=False)


def test_checksum_mismatch(tmp_path, shared_data):
    root = _copy_mnist(shared_data, tmp_path)
    p = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(p.read_bytes())
    blob[100] ^= 0xFF
    p.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: checksum mismatch: expected MD5 ec29112d\w+, got"):
        D.load("mnist", root)


def test_truncated_gzip(tmp_path, shared_data):
    root = _copy_mnist(shared_data, tmp_path)
    p = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:2000])
    spec = _spec_for(_rename(root, "mnist-test"))
    with pytest.raises(DataError, match="not a complete gzip file"):
        D.load(spec, root)


def _rename(root: Path, name: str) -> Path:
    (root / "mnist").rename(root / name)
    return root


def test_wrong_magic_and_count_mismatch(tmp_path):
    folder = tmp_path / "mnist-test"
    folder.mkdir()
    x = np.zeros((5, 28, 28), np.uint8)
    _write_idx(folder / "train-images-idx3-ubyte.gz", 2051, x)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, np.zeros(4))
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", 2049, np.zeros(3))  # labels magic in an images file
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, np.zeros(3))
    spec = replace(_spec_for(tmp_path), n_train=0, n_test=0)
    with pytest.raises(DataError, match="5 images but train-labels-idx1-ubyte.gz has 4 labels"):
        D.load(spec, tmp_path)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, np.zeros(5))
    spec = replace(_spec_for(tmp_path), n_train=0, n_test=0)
    with pytest.raises(DataError, match="wrong IDX magic number 2049, expected 2051"):
        D.load(spec, tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set 'mnits'; known data sets: mnist, fashion-mnist, cifar-10, kmnist, "
                                        "cifar-100, svhn, or a path to your .npz file or image folder"):
        D.load("mnits")


def _cifar_batch(rng, n, label):
    return {b"batch_label": label.encode(), b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def _write_cifar(folder: Path, rng, n=40) -> dict:
    """A small archive in the official layout: cifar-10-batches-py/{data_batch_1..5,test_batch}."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": _cifar_batch(rng, n, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(rng, n, "testing batch 1 of 1")
    staging = folder / "staging" / "cifar-10-batches-py"
    staging.mkdir(parents=True)
    for name, b in batches.items():
        (staging / name).write_bytes(pickle.dumps(b, protocol=2))
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(staging, arcname="cifar-10-batches-py")
    shutil.rmtree(folder / "staging")
    return batches


def test_cifar_python_format_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    batches = _write_cifar(tmp_path / "cifar-10", rng)
    archive = tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    spec = replace(CIFAR10, files=(DataFile(archive.name, D.sources.md5sum(archive), ()),), n_train=200, n_test=40)
    ds = D.load(spec, tmp_path)
    assert ds.train_x.shape == (200, 3, 32, 32) and ds.train_x.dtype == torch.uint8
    expect = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert np.array_equal(ds.train_x.numpy(), expect)
    assert ds.test_y.tolist() == batches["test_batch"][b"labels"]
    # channel-major planes: pixel (0, 0) of image 0 is bytes 0 (R), 1024 (G), 2048 (B)
    row = batches["data_batch_1"][b"data"][0]
    assert ds.train_x[0, :, 0, 0].tolist() == [row[0], row[1024], row[2048]]


def test_cifar_checks_official_batch_md5(tmp_path):
    rng = np.random.default_rng(1)
    _write_cifar(tmp_path / "cifar-10", rng)
    archive = tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    from petri.data.cifar import load_cifar_archive
    from petri.data.registry import CIFAR_BATCH_MD5

    with pytest.raises(DataError, match="checksum mismatch for data_batch_1: expected c99cafc1"):
        load_cifar_archive(archive, CIFAR_BATCH_MD5[CIFAR10.files[0].md5])


class _Server:
    """A real HTTP server on 127.0.0.1 serving a folder (optionally corrupting one file)."""

    def __init__(self, folder: Path, corrupt: str | None = None):
        corrupt_name = corrupt

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(folder), **k)

            def log_message(self, *a):
                pass

            def copyfile(self, source, outputfile):
                data = source.read()
                if corrupt_name and self.path.endswith(corrupt_name):
                    data = data[:-10] + b"corrupted!"
                outputfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_from_local_server(tmp_path, shared_data, monkeypatch):
    server = _Server(shared_data)
    try:
        monkeypatch.setenv("PETRI_MIRROR", server.url)
        root = tmp_path / "empty"
        ds = D.load("mnist", root)
        assert ds.train_y.bincount().tolist() == MNIST_TRAIN
        assert all(hashlib.md5((root / "mnist" / f.name).read_bytes()).hexdigest() == f.md5 for f in MNIST.files)
    finally:
        server.close()


def test_corrupt_download_is_rejected_and_removed(tmp_path, shared_data, monkeypatch):
    server = _Server(shared_data, corrupt="t10k-labels-idx1-ubyte.gz")
    spec = replace(MNIST, files=tuple(replace(f, urls=()) for f in MNIST.files))  # only the local mirror
    try:
        monkeypatch.setenv("PETRI_MIRROR", server.url)
        root = tmp_path / "empty"
        with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*checksum mismatch"):
            D.load(spec, root)
        assert not (root / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
        assert not list(Path(cache.cache_dir()).glob("mnist-*/**/*corrupt*"))
    finally:
        server.close()


def test_no_network_says_where_to_put_files(tmp_path, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here: connection refused, like a machine without network
    spec = replace(MNIST, files=tuple(replace(f, urls=()) for f in MNIST.files))
    monkeypatch.setenv("PETRI_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte.gz \(no network\?\).*copy the official file into"):
        D.load(spec, tmp_path / "nothing")


def _served_spec(spec, folder: Path, n_train: int, n_test: int):
    """``spec`` with the checksums of the small official-format files a test wrote to folder/<name>/,
    fetched only from the local mirror (PETRI_MIRROR)."""
    files = tuple(DataFile(f.name, D.sources.md5sum(folder / spec.name / f.name), ()) for f in spec.files)
    return replace(spec, files=files, n_train=n_train, n_test=n_test)


def _download(spec, served: Path, tmp_path, monkeypatch):
    server = _Server(served)
    try:
        monkeypatch.setenv("PETRI_MIRROR", server.url)
        root = tmp_path / "downloaded"
        ds = D.load(spec, root)
        assert all(D.sources.md5sum(root / spec.name / f.name) == f.md5 for f in spec.files)
        return ds
    finally:
        server.close()


def test_kmnist_idx_files_read_back_and_download(tmp_path, monkeypatch):
    from petri.data.registry import KMNIST

    rng = np.random.default_rng(3)
    folder = tmp_path / "served" / "kmnist"
    folder.mkdir(parents=True)
    xs = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 30), ("t10k", 12))}
    ys = {s: rng.integers(0, 10, len(x)).astype(np.uint8) for s, x in xs.items()}
    for s in xs:
        _write_idx(folder / f"{s}-images-idx3-ubyte.gz", 2051, xs[s])
        _write_idx(folder / f"{s}-labels-idx1-ubyte.gz", 2049, ys[s])
    ds = _download(_served_spec(KMNIST, tmp_path / "served", 30, 12), tmp_path / "served", tmp_path, monkeypatch)
    assert np.array_equal(ds.train_x.numpy()[:, 0], xs["train"]) and np.array_equal(ds.test_y.numpy(), ys["t10k"])
    assert ds.spec.classes[:3] == ("o", "ki", "su")


def _write_cifar100(folder: Path, rng, n=(50, 20)) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / "staging" / "cifar-100-python"
    staging.mkdir(parents=True)
    batches = {}
    for name, count in zip(("train", "test"), n):
        fine = rng.integers(0, 100, count)
        batches[name] = {b"filenames": [b"x.png"] * count, b"batch_label": name.encode(),
                         b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist(),
                         b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}
        (staging / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    (staging / "meta").write_bytes(pickle.dumps({b"fine_label_names": [], b"coarse_label_names": []}))
    with tarfile.open(folder / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(staging, arcname="cifar-100-python")
    shutil.rmtree(folder / "staging")
    return batches


def test_cifar100_fine_and_coarse_labels_and_download(tmp_path, monkeypatch):
    from petri.data.registry import CIFAR100, registered

    rng = np.random.default_rng(4)
    batches = _write_cifar100(tmp_path / "served" / "cifar-100", rng)
    fine = _download(_served_spec(CIFAR100, tmp_path / "served", 50, 20), tmp_path / "served", tmp_path, monkeypatch)
    assert fine.train_x.shape == (50, 3, 32, 32) and len(fine.spec.classes) == 100
    assert np.array_equal(fine.train_x.numpy().reshape(50, -1), batches["train"][b"data"])
    assert fine.test_y.tolist() == batches["test"][b"fine_labels"]
    coarse_spec = replace(registered("cifar-100/coarse"), files=fine.spec.files, n_train=50, n_test=20)
    coarse = D.load(coarse_spec, tmp_path / "downloaded")
    assert coarse.spec.key == "cifar-100/coarse" and len(coarse.spec.classes) == 20
    assert coarse.test_y.tolist() == batches["test"][b"coarse_labels"] and coarse.spec.classes[0] == "aquatic_mammals"
    assert coarse.spec.identity != fine.spec.identity  # other labels, other cells
    with pytest.raises(DataError, match=r"cifar-100 has no label variant 'medium'; variants: cifar-100/coarse"):
        registered("cifar-100/medium")


def test_svhn_mat_files_label_10_is_zero_and_download(tmp_path, monkeypatch):
    import scipy.io

    from petri.data.registry import SVHN

    rng = np.random.default_rng(5)
    folder = tmp_path / "served" / "svhn"
    folder.mkdir(parents=True)
    raw = {}
    for name, n in (("train_32x32.mat", 25), ("test_32x32.mat", 10)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0] = 10
        scipy.io.savemat(folder / name, {"X": x, "y": y})
        raw[name] = (x, y)
    ds = _download(_served_spec(SVHN, tmp_path / "served", 25, 10), tmp_path / "served", tmp_path, monkeypatch)
    x, y = raw["train_32x32.mat"]
    assert np.array_equal(ds.train_x.numpy(), x.transpose(3, 2, 0, 1))
    assert ds.train_y[0] == 0 and ds.train_y.tolist() == (y[:, 0] % 10).tolist()
    assert ds.test_x[3, 1, 5, 7] == raw["test_32x32.mat"][0][5, 7, 1, 3]  # [N, C, H, W] from [H, W, C, N]


def test_every_registered_set_has_official_files_and_citation():
    assert set(D.DATASETS) == {"mnist", "fashion-mnist", "cifar-10", "kmnist", "cifar-100", "svhn"}
    for spec in D.DATASETS.values():
        assert spec.files and all(len(f.md5) == 32 and f.urls for f in spec.files), spec.name
        assert spec.citation and len(spec.classes) >= 10 and spec.format in dataset.FORMATS


# --- data folders missing, damaged or unreadable, through the command line ---------------------

def test_data_folders_that_are_missing_or_damaged(tmp_path, cli, small_study_file, shared_data, monkeypatch):
    f = small_study_file
    monkeypatch.setenv("PETRI_DATA", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("PETRI_MIRROR", "http://127.0.0.1:9")  # no network
    code, _, err = cli("run", f, "--out", tmp_path / "o")
    one_line(code, err, 1, "could not download")
    assert not (tmp_path / "no-such-folder").exists()  # never created
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    (data / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("PETRI_DATA", str(data))
    code, _, err = cli("data", "verify", "mnist")
    one_line(code, err, 1, "mnist: missing t10k-labels-idx1-ubyte.gz")
    os.chmod(data / "mnist" / "t10k-images-idx3-ubyte.gz", 0)
    code, _, err = cli("run", f, "--out", tmp_path / "o2", "--no-report")
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err


def _unprivileged(*args, **env):
    """petri as root without the capability to read others' files (as any user meets a mode-000 file)."""
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "petri.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop read rights")
def test_an_unreadable_data_file_is_a_place_error(tmp_path, shared_data):
    data = tmp_path / "ds"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    locked = data / "mnist" / "train-images-idx3-ubyte.gz"
    locked.chmod(0)
    env = dict(PETRI_DATA=str(data), PETRI_CACHE=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    study = tmp_path / "s.toml"
    study.write_text('name = "u"\ndata = "mnist"\n[recipe]\nmodel = "mlp"\nepochs = 1\ntrain_size = 500\n'
                     '[variants.a]\n[variants.b]\ntreatments = ["invert"]\n')
    for args in (["data", "verify", "mnist"], ["run", study, "--out", tmp_path / "out"]):
        r = _unprivileged(*args, **env)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip().splitlines()[-1] == (f"petri: error: {locked}: cannot read this data file (Permission "
                                                     f"denied); give petri read access to it (e.g. chmod a+r {locked})")
    import numpy as np

    import petri

    npz = tmp_path / "mine.npz"
    x = np.zeros((20, 1, 8, 8), np.uint8)
    petri.save_dataset(npz, x, np.arange(20) % 2, x[:10], np.arange(10) % 2)
    npz.chmod(0)
    r = _unprivileged("data", "verify", npz, PETRI_CACHE=str(tmp_path / "cache2"))
    assert r.returncode == 1 and f"{npz}: cannot read this data file (Permission denied)" in r.stderr
