"""Treatments: properties (hypothesis where it fits), determinism, validation errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from petri.errors import SpecError
from petri.rng import derive_seed
from petri.treatments import TREATMENTS, Pipeline, parse_treatment
from petri.treatments.augment import Crop
from petri.treatments.base import Context
from petri.treatments.pipeline import treatment_key

SHAPE = (1, 28, 28)


def unit(x):
    """The pipeline's scaling of uint8 pixels to [0, 1]."""
    return x * (1.0 / 255)


def _ctx(shape=SHAPE):
    return Context(shape, 10, torch.zeros(1, dtype=torch.long), None, torch.device("cpu"))


def pipe_for(ts, seeds, y=None, x=None):
    y = torch.randint(0, 10, (600,)) if y is None else y
    x = torch.randint(0, 256, (600, *SHAPE), dtype=torch.uint8) if x is None else x
    return Pipeline(ts, seeds, SHAPE, 10, x, y, "cpu")


def apply(spec, x_u8, seed=0, split="train", epoch=1, idx=None):
    """Apply one treatment to uint8 images [B, C, H, W] for one member; returns float [B, C, H, W]."""
    t = parse_treatment(spec)
    p = pipe_for([[t]], [seed], x=x_u8)
    idx = torch.arange(len(x_u8)) if idx is None else idx
    return p.images(x_u8[None], idx[None], split, epoch)[0]


images = st.integers(0, 2**31 - 1).map(
    lambda s: torch.randint(0, 256, (4, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(s)))


@settings(max_examples=20, deadline=None)
@given(images)
def test_invert_twice_is_identity(x):
    p = pipe_for([[parse_treatment({"name": "invert"}), parse_treatment({"name": "invert"})]], [0])
    out = p.images(x[None], torch.arange(4)[None], "train", 1)[0]
    torch.testing.assert_close(out, unit(x), atol=1e-6, rtol=0)


@settings(max_examples=30, deadline=None)
@given(images, st.integers(1, 28), st.data())
def test_window_keep_and_drop(x, k, data):
    r = data.draw(st.integers(0, 28 - k))
    c = data.draw(st.integers(0, 28 - k))
    keep = apply({"name": "window_keep", "size": k, "row": r, "col": c}, x)
    drop = apply({"name": "window_drop", "size": k, "row": r, "col": c}, x)
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[r:r + k, c:c + k] = True
    xf = unit(x)
    assert (keep[..., ~inside] == 0).all() and torch.equal(keep[..., inside], xf[..., inside])
    assert (drop[..., inside] == 0).all() and torch.equal(drop[..., ~inside], xf[..., ~inside])


def test_window_beyond_image_is_an_error():
    t = parse_treatment({"name": "window_keep", "size": 9, "row": 20, "col": 0})
    with pytest.raises(ValueError, match=r"beyond the 28×28 image; allowed: row \+ size <= 28"):
        t.check(SHAPE)


def test_sparsify_and_standardize():
    x = torch.randint(0, 256, (50, *SHAPE), dtype=torch.uint8)
    out = apply({"name": "sparsify", "threshold": 0.5}, x)
    torch.testing.assert_close(out, (unit(x) - 0.5).clamp(0, 1))
    p = pipe_for([[parse_treatment({"name": "standardize"})]], [0], x=x)
    z = p.images(x[None], torch.arange(50)[None], "test", 0)[0]
    assert abs(z.mean().item()) < 1e-4 and abs(z.std().item() - 1) < 1e-3
    fixed = apply({"name": "standardize", "mean": 0.5, "std": 0.25}, x)
    torch.testing.assert_close(fixed, (unit(x) - 0.5) / 0.25)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_label_noise_rate_and_test_untouched(p):
    n, C = 20000, 10
    y = torch.randint(0, C, (n,))
    t = parse_treatment({"name": "label_noise", "p": p})
    pipe = pipe_for([[t]], [3], y=y)
    idx = torch.arange(n)[None]
    noisy = pipe.labels(y[idx], idx)[0]
    rate = (noisy != y).float().mean().item()
    expect = p * (C - 1) / C
    sd = (expect * (1 - expect) / n) ** 0.5
    assert abs(rate - expect) <= 5 * sd + 1e-9
    assert not t.acts_on("test") and pipe.groups["test"] == []


def test_label_noise_only_on_train():
    with pytest.raises(SpecError, match="split 'test' not allowed"):
        parse_treatment({"name": "label_noise", "p": 0.1, "splits": ["train", "test"]})


def test_permute_pixels_bijection_same_for_train_test_and_members():
    x = torch.arange(28 * 28).reshape(1, 1, 28, 28).remainder(256).to(torch.uint8).repeat(2, 1, 1, 1)
    t = parse_treatment({"name": "permute_pixels"})
    pipe = pipe_for([[t], [t], [t]], [5, 5, 6])
    st_ = pipe.groups["train"][0].states[0]["perm"]
    assert sorted(st_[0].tolist()) == list(range(784))  # a bijection
    assert torch.equal(st_[0], st_[1]) and not torch.equal(st_[0], st_[2])
    train = pipe.images(x[None].expand(3, -1, -1, -1, -1), torch.arange(2)[None].expand(3, -1), "train", 1)
    test = pipe.images(x, torch.arange(2), "test", 0)
    assert torch.equal(train, test)


def test_static_prefix_composes_affines_and_permutations():
    """[invert, permute, window, permute] becomes one per-pixel affine then one gather (channels move
    together), equal to applying the four in turn; with absorb_order the gather is left to the model."""
    shape = (3, 6, 5)
    x = torch.randint(0, 256, (7, *shape), dtype=torch.uint8)
    ts = [parse_treatment(s) for s in ({"name": "invert"}, {"name": "permute_pixels"},
                                       {"name": "window_keep", "size": 3, "row": 1, "col": 2}, {"name": "permute_pixels"})]
    y, idx = torch.zeros(7, dtype=torch.long), torch.arange(7)
    pipe = Pipeline([ts, []], [4, 4], shape, 10, x, y, "cpu")
    out = pipe.images(x, idx, "train", 1)
    p1, p2 = (t.state(treatment_key(4, t, i), _ctx(shape))["perm"] for i, t in ((0, ts[1]), (1, ts[3])))
    mask = torch.zeros(6, 5)
    mask[1:4, 2:5] = 1
    by_hand = (1 - unit(x)).flatten(2)[..., p1].view(7, *shape) * mask
    by_hand = by_hand.flatten(2)[..., p2].view(7, *shape)
    torch.testing.assert_close(out[0], by_hand, rtol=0, atol=1e-6)
    assert torch.equal(out[1], unit(x)) and not pipe.absorbed
    absorbing = Pipeline([ts, []], [4, 4], shape, 10, x, y, "cpu", absorb_order=True)
    assert list(absorbing.absorbed) == [0] and torch.equal(absorbing.absorbed[0], p1[p2])
    assert not absorbing.groups["train"] and not absorbing.groups["test"]
    raw = absorbing.images(x, idx, "test", 0)
    torch.testing.assert_close(raw[0].flatten(2)[..., p1[p2]].view(7, *shape), by_hand, rtol=0, atol=1e-6)
    train_only = parse_treatment({"name": "permute_pixels", "splits": ["train"]})  # not the same for test
    assert not Pipeline([[train_only]], [4], shape, 10, x, y, "cpu", absorb_order=True).absorbed


def test_shuffle_pixels_keeps_multiset_and_differs_per_image():
    x = torch.randint(0, 256, (6, *SHAPE), dtype=torch.uint8)
    out = apply({"name": "shuffle_pixels"}, x)
    for i in range(6):
        assert torch.equal(out[i].flatten().sort().values, (unit(x[i])).flatten().sort().values)
    same = x[:1].expand(6, -1, -1, -1).contiguous()
    o2 = apply({"name": "shuffle_pixels"}, same)
    assert not torch.equal(o2[0], o2[1])
    again = apply({"name": "shuffle_pixels"}, same, epoch=5)  # static: same every epoch
    assert torch.equal(o2, again)
    assert torch.equal(apply({"name": "shuffle_pixels"}, x, split="test"), unit(x))


@pytest.mark.parametrize("name", ["shuffle_pixels", "gaussian_images"])
def test_per_image_draws_follow_the_cell_seed_not_the_pack(name):
    """Draws come from a shared pool through a per-cell bijection: a cell gets the same images alone
    or beside others, another seed other images, and no two images of a cell share a draw."""
    x = torch.randint(0, 256, (5, *SHAPE), dtype=torch.uint8)
    same = x[:1].expand(600, -1, -1, -1).contiguous()  # one image under every index of the split
    t = parse_treatment({"name": name})
    idx = torch.arange(600)
    alone = pipe_for([[t]], [3], x=same).images(same[None], idx[None], "train", 1)[0]
    packed = pipe_for([[t], [t]], [1, 3], x=same).images(same[None].expand(2, -1, -1, -1, -1),
                                                         idx[None].expand(2, -1), "train", 1)
    assert torch.equal(packed[1], alone) and not torch.equal(packed[0], alone)
    assert len({tuple(a.flatten().tolist()) for a in alone}) == 600  # 600 images, 600 draws


def test_gaussian_images_match_mean_and_std():
    x = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8)
    out = apply({"name": "gaussian_images"}, x)
    xf = unit(x)
    for i in range(8):
        assert abs(out[i].mean() - xf[i].mean()) < 4 * xf[i].std() / 28 + 1e-3
        assert abs(out[i].std() / xf[i].std() - 1) < 0.15
    assert not torch.equal(out, xf)


def test_crop_shifts_within_pad_and_vary_by_epoch():
    keys = torch.tensor([derive_seed(0, "x")])
    idx = torch.arange(2000)[None]
    dy1, dx1 = Crop.shifts(keys, idx, 1, 4)
    dy2, _ = Crop.shifts(keys, idx, 2, 4)
    for d in (dy1, dx1):
        assert d.min() == -4 and d.max() == 4
    assert (dy1 != dy2).float().mean() > 0.5
    # a crop is the padded image shifted: with zero padding, the centre moves by (dy, dx)
    x = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    x[0, 0, 14, 14] = 255
    out = apply({"name": "crop", "pad": 4, "mode": "constant"}, x, seed=0, epoch=3)
    pos = (out[0, 0] == 1).nonzero()
    assert len(pos) <= 1 and (len(pos) == 0 or (abs(pos[0] - 14) <= 4).all())


def test_flip_flips_about_half():
    x = torch.randint(0, 256, (2000, *SHAPE), dtype=torch.uint8)
    out = apply({"name": "flip"}, x)
    xf = unit(x)
    flipped = (out == xf.flip(-1)).flatten(1).all(1)
    same = (out == xf).flatten(1).all(1)
    assert (flipped | same).all()
    assert 0.45 < flipped.float().mean() < 0.55
    assert not torch.equal(out, apply({"name": "flip"}, x, epoch=2))


@pytest.mark.parametrize("spec", [
    {"name": "invert"}, {"name": "sparsify", "threshold": 0.3}, {"name": "standardize"},
    {"name": "window_keep", "size": 9, "row": 3, "col": 4}, {"name": "window_drop", "size": 5, "row": 0, "col": 0},
    {"name": "permute_pixels"}, {"name": "shuffle_pixels"}, {"name": "gaussian_images"},
    {"name": "crop", "pad": 2}, {"name": "flip", "p": 0.5},
])
def test_every_image_treatment_is_deterministic_in_its_seed(spec):
    x = torch.randint(0, 256, (16, *SHAPE), dtype=torch.uint8)
    a, b, c = apply(spec, x, seed=1), apply(spec, x, seed=1), apply(spec, x, seed=2)
    assert torch.equal(a, b)
    if spec["name"] in ("permute_pixels", "shuffle_pixels", "gaussian_images", "crop", "flip"):
        assert not torch.equal(a, c)


def test_registry_complete():
    assert set(TREATMENTS) == {"invert", "sparsify", "standardize", "window_keep", "window_drop", "label_noise",
                               "permute_pixels", "shuffle_pixels", "gaussian_images", "crop", "flip"}


@pytest.mark.parametrize("spec,msg", [
    ({"name": "label_noise", "p": 1.5}, r"^treatment.p: must be ≤ 1.0 \(got 1.5\)$"),
    ({"name": "window_keep", "size": 0, "row": 0, "col": 0}, r"^treatment.size: must be ≥ 1 \(got 0\)$"),
    ({"name": "invertt"}, r"unknown treatment 'invertt'; known treatments: invert, sparsify"),
    ({"name": "sparsify", "threshold": 1.0}, r"^treatment.threshold: must be < 1.0 \(got 1.0\)$"),
    ({"name": "invert", "strength": 2}, r"^treatment.strength: unknown field; allowed: splits$"),
    ({"name": "standardize", "mean": float("nan")}, r"^treatment.mean: must be a finite number"),
])
def test_parameter_errors_are_one_line(spec, msg):
    with pytest.raises(SpecError, match=msg) as e:
        parse_treatment(spec)
    assert "\n" not in str(e.value)


def test_mixed_pack_groups_and_split_override():
    x = torch.randint(0, 256, (4, *SHAPE), dtype=torch.uint8)
    win_test_only = parse_treatment({"name": "window_keep", "size": 9, "row": 0, "col": 0, "splits": ["test"]})
    inv = parse_treatment({"name": "invert"})
    pipe = pipe_for([[], [inv], [win_test_only], [inv]], [0, 0, 0, 1])
    idx = torch.arange(4)
    train = pipe.images(x[None].expand(4, -1, -1, -1, -1), idx[None].expand(4, -1), "train", 1)
    xf = unit(x)
    assert torch.equal(train[0], xf) and torch.equal(train[2], xf)
    torch.testing.assert_close(train[1], 1 - xf)
    test = pipe.images(x, idx, "test", 0)
    assert (test[2][..., 9:, :] == 0).all() and torch.equal(test[0], xf)


@pytest.mark.parametrize("mode", ["reflect", "constant", "replicate"])
def test_crop_equals_pad_then_slice(mode):
    import torch.nn.functional as F

    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    t = parse_treatment({"name": "crop", "pad": 3, "mode": mode})
    pipe = Pipeline([[t]], [11], (3, 8, 8), 10, x, torch.zeros(64, dtype=torch.long), "cpu")
    idx = torch.arange(64)
    out = pipe.images(x[None], idx[None], "train", 2)[0]
    key = pipe.groups["train"][0].keys[0]
    dy, dx = Crop.shifts(key, idx[None], 2, 3)
    padded = F.pad(unit(x), (3, 3, 3, 3), mode=mode)
    for i in range(64):
        r, c = 3 + int(dy[0, i]), 3 + int(dx[0, i])
        assert torch.equal(out[i], padded[i, :, r:r + 8, c:c + 8])


def test_group_members_with_different_stateless_parameters():
    """flip p=0 and flip p=1 share a group (same structure) but must not share parameters."""
    x = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8)
    never, always = parse_treatment({"name": "flip", "p": 0.0}), parse_treatment({"name": "flip", "p": 1.0})
    pipe = pipe_for([[never], [always], [never]], [0, 1, 2], x=x)
    assert len(pipe.groups["train"]) == 1
    out = pipe.images(x[None].expand(3, -1, -1, -1, -1), torch.arange(8)[None].expand(3, -1), "train", 1)
    assert torch.equal(out[0], unit(x)) and torch.equal(out[2], unit(x))
    assert torch.equal(out[1], unit(x).flip(-1))


@pytest.mark.parametrize("shifted", [True, False])
def test_reader_does_leading_crop_and_flip_exactly_as_the_batch_treatments(shifted, monkeypatch):
    """Training images read with their leading crop / flip done by the read (padded copies of the data
    set: one per horizontal shift, or one read as a strided view) equal the same treatments run on the
    batch: every order, pad, mode and mix."""
    from petri.treatments import rows

    monkeypatch.setattr(rows, "SHIFTED_BYTES", 2 << 30 if shifted else 0)
    shape = (3, 8, 6)
    N = 40
    x = torch.randint(0, 256, (N, *shape), dtype=torch.uint8)
    y = torch.zeros(N, dtype=torch.long)

    def t(name, **kw):
        return parse_treatment({"name": name, **kw})

    members = [[], [t("crop", pad=2)], [t("flip")], [t("crop", pad=3), t("flip", p=0.7)],
               [t("flip"), t("crop", pad=1, mode="constant")], [t("crop", pad=2, mode="replicate"), t("invert")],
               [t("crop", pad=3), t("flip", p=0.7)], [t("flip", p=1.0), t("window_drop", size=2, row=1, col=1)],
               [t("invert"), t("crop", pad=2)], [t("crop", pad=0), t("flip", p=0.3)]]
    seeds = list(range(len(members)))
    K, S, B = len(members), 3, 5
    cache: dict = {}
    read = Pipeline(members, seeds, shape, 10, x, y, "cpu", reader_cache=cache)
    batch = Pipeline(members, seeds, shape, 10, x, y, "cpu")
    assert len(read.groups["train"]) < len(batch.groups["train"])  # the reader took the leading steps over
    pos = torch.stack([torch.randperm(N)[:S * B].view(S, B) for _ in range(K)], dim=1)  # [S, K, B]
    ids = pos * 7 + 3  # indices in the full split: the draws' keys
    buf = torch.empty(S * K * B * read.reader.image_bytes, dtype=torch.uint8)
    for epoch in (1, 2):
        raw = read.reader.read(pos, ids, epoch, buf).view(S, K, B, *shape)
        for s in range(S):
            got = read.images(raw[s], ids[s], "train", epoch)
            want = batch.images(x[pos[s]], ids[s], "train", epoch)
            assert torch.equal(got, want), s
    assert len(cache) == 1  # one set of copies (modes reflect, constant, replicate; mirrored)
    assert read.reader.shifts == (7 if shifted else 1)
    whole = Pipeline([[], [t("invert")]], [0, 1], shape, 10, x, y, "cpu", reader_cache={})
    assert whole.reader.windows is None  # no crop / flip: whole images, one row each
    raw = whole.reader.read(pos[:, :2], ids[:, :2], 1, buf)
    assert torch.equal(raw.view(S, 2, B, *shape), x[pos[:, :2]])
