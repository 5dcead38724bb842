"""Your own data: .npz arrays and image folders (real images: scikit-learn's bundled digits), their
identity, every shape petri's treatments and layers accept, and bad input in one line."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import petri.data as D
from petri.cli import app
from petri.errors import DataError, SpecError
from petri.study.runner import run_study
from petri.study.spec import parse_study
from petri.treatments import TREATMENTS, Pipeline, parse_treatment

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def digits():
    """1,797 real 8×8 digit images (scikit-learn's copy of the UCI set), as uint8 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images / 16 * 255).astype(np.uint8)
    return x[:1500], d.target[:1500], x[1500:], d.target[1500:]


def write_npz(path: Path, **over) -> Path:
    xtr, ytr, xte, yte = digits()
    arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte} | over
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_folder(root: Path) -> Path:
    xtr, ytr, xte, yte = digits()
    for split, xs, ys in (("train", xtr, ytr), ("test", xte, yte)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            d = root / split / str(y)
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x, mode="L").save(d / f"{i:05d}.png")
    return root


STUDY = """
name = "digits"
data = "{data}"
seeds = 2
baseline = "mlp"

[recipe]
model = {{ name = "mlp", hidden = [64] }}
optimizer = {{ name = "adam", lr = 3e-3 }}
batch_size = 32
epochs = 15

[variants.mlp]

[variants.window]
treatments = [{{ name = "window_keep", size = 6, row = 1, col = 1 }}]
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    return write_npz(tmp / "digits.npz"), write_folder(tmp / "digits-png")


def test_npz_and_png_folder_are_the_same_data(both):
    npz, folder = both
    a, b = D.load(str(npz)), D.load(str(folder))
    assert a.train_x.shape == (1500, 1, 8, 8) and a.test_x.shape == (297, 1, 8, 8)
    for t in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, t), getattr(b, t)), t
    assert a.spec.classes == b.spec.classes == tuple(str(i) for i in range(10))
    assert a.spec.identity == b.spec.identity and len(a.spec.identity[0]) == 32


def test_studies_on_real_digits_learn_and_agree(both, tmp_path):
    """An mlp trained on the digits .npz and on the same digits as PNG folders: ≥ 0.90 test accuracy,
    and the same cells (same hashes, same numbers) from either form."""
    npz, folder = both
    results = []
    for data in (npz, folder):
        study = parse_study(STUDY.format(data=data))
        out = tmp_path / data.name
        run_study(study, out)
        db = sqlite3.connect(out / "petri.sqlite")
        results.append(db.execute("SELECT c.hash, c.variant, e.test_acc FROM epochs e JOIN cells c ON c.hash = e.cell_hash "
                                  "WHERE e.epoch = 15 ORDER BY c.hash").fetchall())
        db.close()
    assert results[0] == results[1]
    assert min(acc for _, v, acc in results[0] if v == "mlp") >= 0.90


def test_editing_the_file_gives_new_cells(tmp_path):
    f = write_npz(tmp_path / "d.npz")
    before = {c.hash for c in parse_study(STUDY.format(data=f)).cells}
    xtr, ytr, xte, yte = digits()
    xtr = xtr.copy()
    xtr[0, 0, 0] ^= 1  # one pixel of one image
    os.utime(f, (0, 0))
    write_npz(f, x_train=xtr)
    after = {c.hash for c in parse_study(STUDY.format(data=f)).cells}
    assert before.isdisjoint(after)


def test_relative_paths_follow_the_study_file(tmp_path):
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "d.npz")
    f = tmp_path / "study.toml"
    f.write_text(STUDY.format(data="data/d.npz"))
    from petri.study.spec import load_study

    s = load_study(f)
    assert s.data == str((tmp_path / "data" / "d.npz").resolve()) and s.cells[0].config.count('"data":"user"') == 1


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (3, 32, 32), (1, 64, 64), (3, 20, 12)])
def test_every_treatment_fits_any_image_shape(shape):
    """Each registered treatment, with parameters that fit, on images of 8×8 to 64×64, 1 or 3 channels."""
    C, H, W = shape
    params = {"window_keep": {"size": min(H, W) // 2, "row": 1, "col": 1},
              "window_drop": {"size": min(H, W) // 2, "row": 0, "col": 0},
              "sparsify": {"threshold": 0.3}, "label_noise": {"p": 0.2}, "crop": {"pad": 2}}
    x = torch.randint(0, 256, (40, C, H, W), dtype=torch.uint8)
    y = torch.randint(0, 10, (40,))
    for name in TREATMENTS:
        t = parse_treatment({"name": name, **params.get(name, {})})
        t.check(shape)
        pipe = Pipeline([[t], []], [0, 1], shape, 10, x, y, "cpu")
        out = pipe.images(x[:8].expand(2, -1, -1, -1, -1).contiguous(), torch.arange(8).expand(2, 8), "train", 1)
        assert out.shape == (2, 8, C, H, W) and torch.isfinite(out).all(), name


def test_layer_lists_fit_any_image_shape():
    from petri.models import parse_model

    for shape in [(1, 8, 8), (3, 32, 32), (1, 64, 64)]:
        m = parse_model([{"name": "conv2d", "filters": 4, "padding": 1}, "relu", "global_avg_pool",
                         {"name": "dense", "units": "classes"}])
        m.check(shape, 10)
        net = m.build(shape, 10, [0, 1])
        assert net.forward(torch.rand(2, 3, *shape), train=False).shape == (2, 3, 10)


def test_parameters_that_do_not_fit_the_data_are_refused_naming_both(both):
    npz, _ = both
    text = STUDY.format(data=npz).replace("size = 6, row = 1, col = 1", "size = 9, row = 0, col = 0")
    with pytest.raises(SpecError, match=r"variants.window.treatments\[0\] \(window_keep\): .*9.*8") as e:
        parse_study(text)
    assert "\n" not in str(e.value)
    text = STUDY.format(data=npz).replace('model = { name = "mlp", hidden = [64] }',
                                          'model = [{ name = "conv2d", filters = 4, kernel = 9 }, "flatten", '
                                          '{ name = "dense", units = "classes" }]')
    with pytest.raises(SpecError, match=r"model.layers\[0\] \(conv2d\): a 9×9 kernel does not fit a 8×8 map"):
        parse_study(text)


BAD_NPZ = {
    "missing keys": ({"y_test": None}, r"missing y_test; an .npz data set holds x_train, y_train, x_test, y_test"),
    "shapes disagree": ({"x_test": np.zeros((5, 9, 9), np.uint8), "y_test": np.zeros(5, np.int64)},
                        r"training images are 1×8×8, test images 1×9×9"),
    "label out of range": ({"classes": np.array(["a", "b"])}, r"labels go up to 9 but classes names 2"),
    "negative label": ({"y_train": np.full(1500, -1)}, r"y_train: label -1 is negative"),
    "float labels": ({"y_train": np.full(1500, 0.5)}, r"y_train: dtype float64; labels must be integers"),
    "NaN images": ({"x_train": np.full((1500, 8, 8), np.nan)}, r"x_train: holds NaN"),
    "floats above 1": ({"x_train": np.full((1500, 8, 8), 2.0)}, r"x_train: float values from 2 to 2; float images must lie in \[0, 1\]"),
    "empty split": ({"x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.zeros(0, np.int64)}, r"x_test: shape \(0, 8, 8\)"),
    "label count": ({"y_test": np.zeros(3, np.int64)}, r"y_test: 3 labels for 297 images"),
    "no channel axis": ({"x_train": np.zeros((1500, 8, 8, 5), np.uint8)}, r"no 1- or 3-channel axis"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_is_one_line_through_the_cli(case, tmp_path):
    over, msg = BAD_NPZ[case]
    f = write_npz(tmp_path / "bad.npz", **over)
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data=f))
    r = runner.invoke(app, ["run", str(study), "--out", str(tmp_path / "out")])
    assert r.exit_code != 0 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("petri: error: s.toml: data: "), r.stderr
    import re

    assert re.search(msg, r.stderr), r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def _folder_case(tmp_path, case) -> Path:
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((6, 6), 40 * i, np.uint8), mode="L").save(root / split / cls / f"{i}.png")
    if case == "non-image file":
        (root / "train" / "cat" / "notes.txt").write_text("not an image")
    elif case == "class missing from test":
        for f in (root / "test" / "dog").iterdir():
            f.unlink()
        (root / "test" / "dog").rmdir()
    elif case == "sizes differ":
        Image.fromarray(np.zeros((7, 6), np.uint8), mode="L").save(root / "test" / "cat" / "odd.png")
    elif case == "no test folder":
        import shutil

        shutil.rmtree(root / "test")
    return root


@pytest.mark.parametrize("case,msg", [
    ("non-image file", r"notes.txt: not an image Pillow can read"),
    ("class missing from test", r"class folder\(s\) dog missing from test/"),
    ("sizes differ", r"odd.png: 6×7 pixels, the others 6×6"),
    ("no test folder", r"no test/ folder"),
])
def test_bad_image_folders_are_one_line(tmp_path, case, msg):
    root = _folder_case(tmp_path, case)
    with pytest.raises(DataError, match=msg) as e:
        D.load(str(root))
    assert "\n" not in str(e.value)


def test_a_good_small_folder_and_rgb(tmp_path):
    root = _folder_case(tmp_path, "fine")
    ds = D.load(str(root))
    assert ds.train_x.shape == (4, 1, 6, 6) and ds.spec.classes == ("cat", "dog")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8), mode="RGB").save(root / "train" / "cat" / "9.png")
    ds = D.load(str(root))  # one colour image: the whole set is RGB
    assert ds.train_x.shape == (5, 3, 6, 6) and ds.test_x.shape == (4, 3, 6, 6)


def test_a_path_that_does_not_exist(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data="missing/data.npz"))
    r = runner.invoke(app, ["run", str(study), "--dry-run"])
    assert r.exit_code == 2 and "missing/data.npz: no such file or folder" in r.stderr and r.stderr.count("\n") == 1


def test_no_command_writes_into_petri_data(tmp_path, shared_data, monkeypatch):
    """--data cifar-10 with its files absent: the dry run says what is missing and how to get them; the
    real run fails in one line (no network here) and PETRI_DATA is left exactly as it was."""
    import shutil

    data = tmp_path / "shared"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    monkeypatch.setenv("PETRI_DATA", str(data))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data="mnist"))
    r = runner.invoke(app, ["run", str(study), "--data", "cifar-10", "--dry-run"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "data: cifar-10: missing cifar-10-python.tar.gz" in r.output
    assert "petri data fetch cifar-10" in r.output
    monkeypatch.setenv("PETRI_MIRROR", "http://127.0.0.1:9")  # nothing listens: no network
    r = runner.invoke(app, ["run", str(study), "--data", "cifar-10", "--out", str(tmp_path / "out")])
    assert r.exit_code != 0 and r.stderr.count("\n") == 1 and "could not download" in r.stderr
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_shipped_own_data_example_runs(tmp_path, shared_data):
    import shutil
    import subprocess
    import sys

    for f in ("make_digits.py", "study.toml"):
        shutil.copy(ROOT / "examples" / "own-data" / f, tmp_path / f)
    subprocess.run([sys.executable, str(tmp_path / "make_digits.py")], check=True, capture_output=True)
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve())}
    r = subprocess.run([sys.executable, "-m", "petri.cli", "run", str(tmp_path / "study.toml"), "--out",
                        str(tmp_path / "out"), "--no-report"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "12 cells — 12 done" in r.stdout
    db = sqlite3.connect(tmp_path / "out" / "petri.sqlite")
    accs = [a for (a,) in db.execute("SELECT test_acc FROM epochs WHERE epoch = 15")]
    assert len(accs) == 12 and min(accs) > 0.85


def test_report_names_the_data_and_its_checksum(both, tmp_path):
    npz, _ = both
    out = tmp_path / "out"
    run_study(parse_study(STUDY.format(data=npz).replace("epochs = 15", "epochs = 1")), out)
    from petri.report.build import build_report

    md = (build_report(out).parent / "report.md").read_text()
    checksum = D.get_spec(str(npz)).identity[0][:12]
    assert f"Data: digits ({npz}; content sha256 {checksum})" in md


def test_a_data_set_registered_by_name_from_python_and_from_a_plugin(both, tmp_path):
    """``petri.register_dataset``: a study names the file by a short name (from Python, and from a
    CLI run through a plugin); the cells are those of the path (content identity); Ray workers, which
    never saw the registration, train it; bad names and files are one line."""
    import petri
    from petri.data.registry import NAMED

    npz, _ = both
    try:
        assert petri.register_dataset("my-digits", npz) == npz.resolve()
        named = parse_study(STUDY.format(data="my-digits").replace("epochs = 15", "epochs = 1"))
        by_path = parse_study(STUDY.format(data=npz).replace("epochs = 15", "epochs = 1"))
        assert [c.hash for c in named.cells] == [c.hash for c in by_path.cells] and named.data == "my-digits"
        listed = petri.datasets().set_index("name").loc["my-digits"]
        assert listed["files"] == str(npz.resolve()) and listed["train"] == 1500 and listed["classes"] == 10
        assert petri.verify_dataset("my-digits")["train_per_class"][0] > 0
        res = petri.run(named, tmp_path / "local", report=False)
        ray = pytest.importorskip("ray")
        try:
            ray_res = petri.run(named, tmp_path / "ray", executor="ray", report=False)
        finally:
            ray.shutdown()
        cols = ["variant", "seed", "epoch", "test_loss"]
        assert res.epochs()[cols].equals(ray_res.epochs()[cols]) and len(res.epochs()) == 4
        assert "Data: my-digits (" in (res.report(tmp_path / "report").parent / "report.md").read_text()
        for name, msg in (("a/b", "without slashes"), ("mnist", "'mnist' is a registered data set"),
                          ("x.npz", "not ending in .npz"), ("", "a short name")):
            with pytest.raises(petri.PetriError, match=msg):
                petri.register_dataset(name, npz)
        with pytest.raises(petri.PetriError, match="no such file or folder"):
            petri.register_dataset("gone", tmp_path / "nowhere.npz")
    finally:
        NAMED.clear()
    # from the command line: a plugin registers it, the study names it
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "mydata.py").write_text(f"import petri\npetri.register_dataset('plugged', {str(npz)!r})\n")
    (tmp_path / "cli" / "study.toml").write_text(
        STUDY.format(data="plugged").replace("epochs = 15", "epochs = 1").replace('seeds = 2', 'seeds = 2\nplugins = ["mydata.py"]'))
    try:
        r = runner.invoke(app, ["run", str(tmp_path / "cli" / "study.toml"), "--out", str(tmp_path / "cli" / "out"),
                                "--no-report"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["data", "list"], env={"COLUMNS": "250"})
        assert "plugged" in r.output and str(npz.resolve()) in r.output
    finally:
        NAMED.clear()
    (tmp_path / "cli" / "study.toml").write_text(STUDY.format(data="plugged"))
    r = runner.invoke(app, ["run", str(tmp_path / "cli" / "study.toml"), "--dry-run"])
    assert r.exit_code == 2 and "unknown data set 'plugged'" in r.stderr


def test_float_images_are_announced_as_rounded(tmp_path):
    from typer.testing import CliRunner

    from petri.cli import app

    x = np.random.default_rng(0).random((30, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x_train=x[:20], y_train=np.arange(20) % 2, x_test=x[20:], y_test=np.arange(10) % 2)
    r = CliRunner().invoke(app, ["data", "verify", str(tmp_path / "f.npz")])
    assert r.exit_code == 0 and "note: " in r.output and "float32 images in [0, 1] are kept as 8-bit" in r.output
    u8 = (x * 255).round().astype(np.uint8)
    np.savez(tmp_path / "u.npz", x_train=u8[:20], y_train=np.arange(20) % 2, x_test=u8[20:], y_test=np.arange(10) % 2)
    r = CliRunner().invoke(app, ["data", "verify", str(tmp_path / "u.npz")])
    assert r.exit_code == 0 and "note:" not in r.output
