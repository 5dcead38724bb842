"""Named random sources: each draw of a cell belongs to one source, sources can be crossed, and a
crossed study's spread is decomposed source by source (report/variance.py has the statistics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from petri.cli import main
from petri.errors import SpecError
from petri.models import MLP
from petri.rng import SOURCES, Seeds
from petri.study.spec import load_study, parse_study
from petri.train import Member, Recipe
from petri.train.shard import Shard, flip_bit
from petri.train.recipe import DataSample, PerturbInit
from petri.train.splits import make_splits
from petri.treatments import parse_treatment

CROSSED = """
name = "noise"
data = "mnist"
seeds = SEEDS
[recipe]
model = { name = "mlp", hidden = [16] }
train_size = 1000
test_size = 500
epochs = 1
[variants.plain]
[variants.fast]
recipe = { optimizer = { lr = 0.003 } }
"""


def test_a_study_without_named_sources_keeps_its_cell_hashes():
    """Pinned from before sources had names (6d21112): every stored ledger keeps its cells."""
    cells = load_study("studies/inverted-mnist.toml").cells
    assert [c.hash for c in cells[:4]] == ["3c603e89bd055879", "04eba39b7b151172", "0c6834bc45f8244e",
                                           "66eea9ffe105dccc"]
    assert all(c.sources is None and c.seeds == c.seed for c in cells)


def test_crossed_seeds_number_places_and_pair_them():
    s = parse_study(CROSSED.replace("SEEDS", "{ init = 2, order = [5, 7, 9] }"))
    assert s.seeds == list(range(6)) and s.crossing == {"init": [0, 1], "order": [5, 7, 9], "rest": [0]}
    plain = [c for c in s.cells if c.variant == "plain"]
    fast = [c for c in s.cells if c.variant == "fast"]
    assert [(c.sources.of("init"), c.sources.of("order")) for c in plain] == [(0, 5), (0, 7), (0, 9), (1, 5), (1, 7),
                                                                              (1, 9)]
    assert [c.sources for c in plain] == [c.sources for c in fast]  # place i shares every seed across variants
    assert all(c.sources.of(s) == 0 for c in plain for s in ("dropout", "augment", "data", "perturb"))  # rest
    # a combination whose seeds are all equal is the plain study's cell with that seed
    one = parse_study(CROSSED.replace("SEEDS", "{ init = [3], order = [3], rest = [3] }")).cells[0]
    assert one.hash == parse_study(CROSSED.replace("SEEDS", "[3]")).cells[0].hash
    # sources a recipe does not use are not part of its cells: no duplicate training
    both = parse_study(CROSSED.replace("SEEDS", "{ init = 2, perturb = 2 }"))
    assert len({c.hash for c in both.cells if c.variant == "plain"}) == 2


@pytest.mark.parametrize("seeds, needle", [
    ("{ init = 0 }", "seeds.init: must be a count 1..10,000 or a list of integers"),
    ("{ init = 2, min = 3 }", "seeds: 'init' is not allowed here; a table of seeds either crosses random sources "
                              "{ init = 5, order = 5 } (sources: init, order, data"),
    ("{ initt = 3 }", "(sources: init, order, data, dropout, augment, perturb, test, rest)"),
    ('{ order = [1, "2"] }', "seeds.order: must be a count"),
    ("{ init = 200, order = 200 }", "40,000 combinations of seeds; at most 10,000 per variant"),
])
def test_bad_crossed_seeds_are_refused_in_one_line(tmp_path, capsys, seeds, needle):
    with pytest.raises(SpecError, match=None) as e:
        parse_study(CROSSED.replace("SEEDS", seeds))
    assert needle in str(e.value)
    f = tmp_path / "s.toml"
    f.write_text(CROSSED.replace("SEEDS", seeds))
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petri: error: ") and err.count("\n") == 1 and needle in err


def test_a_sample_without_replacement_of_every_image_is_refused():
    text = CROSSED.replace("SEEDS", "2").replace("epochs = 1", "epochs = 1\ndata_sample = { size = 1000 }")
    with pytest.raises(SpecError, match=r"recipe.data_sample.size: a sample without replacement of 1000 of the 1000"):
        parse_study(text)
    parse_study(text.replace("size = 1000 }", "size = 1000, replace = true }"))  # a bootstrap sample is fine


def _draws(mnist, seeds: list[Seeds]) -> list[dict]:
    """What each member of one real pack drew, source by source."""
    recipe = Recipe(model=MLP(hidden=[16], dropout=0.2), train_size=500, test_size=100, batch_size=50, device="cpu",
                    data_sample=DataSample(size=300), perturb_init=PerturbInit())
    noisy = [parse_treatment({"name": "label_noise", "p": 0.5})]
    members = [Member(s, noisy) for s in seeds]
    train, val, test = make_splits(mnist, recipe, torch.device("cpu"))
    shard = Shard(mnist, recipe, members, [None] * len(members), train, val, test, torch.device("cpu"),
                   len(members), {})
    labels = shard.pipe.labels(train.y.expand(len(members), -1), train.ids.expand(len(members), -1))
    return [{"theta": shard.net.theta[k].clone(), "order": shard.orders[k].get_state(), "data": shard.samples[k],
             "dropout": [g.get_state() for g in shard.net.member_generators(k).values()], "augment": labels[k]}
            for k in range(len(members))]


def test_a_source_seed_changes_exactly_that_sources_draws(mnist):
    """Members that differ in one source's seed draw that source differently and everything else
    identically (the initial weights bitwise); a plain seed equals Seeds with that base."""
    base, *changed = _draws(mnist, [Seeds(0), *[Seeds(0, ((s, 1),)) for s in SOURCES], Seeds(1)])
    plain_one = changed.pop()
    assert all(_equal(a, b) for a, b in zip(plain_one.values(), _draws(mnist, [Seeds(1)])[0].values()))
    owner = {"order": "order", "data": "data", "dropout": "dropout", "augment": "augment"}
    for source, d in zip(SOURCES, changed):
        for key, who in owner.items():
            assert _equal(d[key], base[key]) == (who != source), (source, key)
        moved = (d["theta"] != base["theta"]).sum().item()
        if source == "init":
            assert moved > 1000
        elif source == "perturb":  # each flipped one bit of one weight: one or two words differ
            assert 1 <= moved <= 2
        else:
            assert moved == 0, source
    assert int(plain_one["data"].numel()) == 300 and plain_one["data"].unique().numel() == 300  # a subset


def _equal(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a.shape == b.shape and bool(torch.equal(a, b))


@pytest.mark.parametrize("bit", [0, 7, 22, 23, 30, 31])
def test_the_perturbation_flips_exactly_one_bit(bit):
    row = torch.randn(1000)
    row[::7] = 0.0  # zeros (a bias at init) are never chosen
    before = row.clone()
    j = flip_bit(row, 5, bit)
    xor = before.view(torch.int32) ^ row.view(torch.int32)
    assert xor.nonzero().view(-1).tolist() == [j] and before[j] != 0
    assert bin(int(xor[j]) & 0xFFFFFFFF).count("1") == 1 and int(xor[j]) & 0xFFFFFFFF == 1 << bit
    if bit == 0:  # the lowest mantissa bit: one ulp away
        assert row[j] in (torch.nextafter(before[j], torch.tensor(math.inf)),
                          torch.nextafter(before[j], torch.tensor(-math.inf)))
    again = before.clone()
    # the perturb seed alone picks it (compared as bits: bit 30 of a value in [1, 2) makes a NaN, unequal to itself)
    assert flip_bit(again, 5, bit) == j and torch.equal(again.view(torch.int32), row.view(torch.int32))
    assert flip_bit(before.clone(), 6, bit) != j


def test_a_crossed_study_runs_and_says_where_its_noise_comes_from(tmp_path, capsys):
    import petri

    f = tmp_path / "s.toml"
    f.write_text(CROSSED.replace("SEEDS", "{ init = 3, order = 3 }"))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "where the noise comes from" in shown and "what pairing gains" in shown
    res = petri.open_study(out)
    cells = res.cells()
    assert list(cells.columns[:5]) == ["variant", "seed", "seed_init", "seed_order", "seed_rest"]
    assert sorted(zip(cells["seed_init"], cells["seed_order"]))[:3] == [(0, 0), (0, 0), (0, 1)]
    noise = res.noise()
    test_parts = {"test set (per example)", "test set (binomial bound)"}
    assert set(noise["source"]) == {"init", "order", "residual"} | test_parts
    for _, g in noise.groupby("variant", observed=True):
        parts = g[~g["source"].isin(test_parts)]
        assert parts["share"].sum() == pytest.approx(1.0)
        assert (parts["low"] <= parts["variance"]).all() and (parts["variance"] <= parts["high"]).all()
        bound = g[g["source"] == "test set (binomial bound)"].iloc[0]
        assert bound["variance"] == pytest.approx(bound["mean"] * (1 - bound["mean"]) / 500)
        measured = g[g["source"] == "test set (per example)"].iloc[0]  # Jordan's Σ p(1 − p) / n² is under the bound
        assert 0 < measured["variance"] <= bound["variance"] and measured["low"] <= measured["variance"] <= measured["high"]
    pairing = res.pairing()
    assert list(pairing["source"]) == ["init", "order", "residual"] and list(pairing["comparison"]) == ["fast − plain"] * 3
    report = out / "report"
    assert (report / "noise.csv").exists() and (report / "figures" / "noise-sources.png").exists()
    assert "## Where the noise comes from" in (report / "report.md").read_text()
    assert petri.open_study(tmp_path / "out").effects()["n"].tolist() == [9, 9]


def test_a_plain_study_has_no_decomposition(tmp_path):
    import petri

    out = tmp_path / "out"
    petri.run(parse_study(CROSSED.replace("SEEDS", "2").replace("train_size = 1000", "train_size = 300")), out)
    res = petri.open_study(out)
    assert res.noise() is None and res.pairing() is None and "seed_init" not in res.cells()
    assert not (out / "report" / "noise.csv").exists()


def test_the_noise_study_parses_and_crosses_its_sources():
    s = load_study("studies/noise-sources.toml")
    assert {"init", "order"} <= set(s.crossing) and len(s.crossing["init"]) > 1 and len(s.crossing["order"]) > 1
    recipes = {c.variant: c.recipe for c in s.cells}
    assert any(r.data_sample for r in recipes.values()) and any(r.perturb_init for r in recipes.values())
    assert np.prod([len(v) for v in s.crossing.values()]) == len(s.seeds)
