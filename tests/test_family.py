"""A study's comparisons as one family (analysis/family.py, analysis/findings.py), checked against scipy
and statsmodels on fixed data: paired t and its interval, Holm and Bonferroni, TOST, a 2 × 2 interaction
(AnovaRM), P(A > B)'s exact interval, power; the rules that withhold a verdict; and how the family is
built from a study's places."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from petri.errors import SpecError
from petri.analysis.family import Comparison, analyse, pairing_gain, verdict
from petri.analysis.findings import findings
from petri.analysis.records import Place, Snapshot, Status
from petri.study.questions import Analysis, Question, parse_analysis

# Final accuracies of a 2 × 2 design (variant × lr) over 7 seeds: BN helps little at the low rate and a
# lot at the high one (an interaction), seeds shared across every cell.
SEEDS = range(7)
rng = np.random.default_rng(1)
seed_effect = rng.normal(0, 0.004, 7)
CELLS = {("plain", 0.05): 0.95, ("bn", 0.05): 0.955, ("plain", 0.5): 0.60, ("bn", 0.5): 0.96}
VALUES = {(v, json.dumps({"lr": lr})): {s: mean + seed_effect[s] + rng.normal(0, 0.003) for s in SEEDS}
          for (v, lr), mean in CELLS.items()}


def key(v, lr):
    return v, json.dumps({"lr": lr})


def simple(a, b, **kw):
    return Comparison(str(a), str(b), "simple effect", ((a, 1.0), (b, -1.0)), **kw)


def test_paired_t_and_interval_are_scipys():
    c = simple(key("bn", 0.5), key("plain", 0.5))
    analyse([c], VALUES)
    a, b = (np.array(list(VALUES[k].values())) for k in (key("bn", 0.5), key("plain", 0.5)))
    ref = stats.ttest_rel(a, b)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (c.lo, c.hi) == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-12)
    assert (c.lo_fw, c.hi_fw) == (c.lo, c.hi) and c.p_fw == pytest.approx(c.p)  # a family of one
    assert c.sd == pytest.approx(stats.tstd(a - b))


def test_holm_and_bonferroni_are_statsmodels_and_intervals_agree_with_verdicts():
    from statsmodels.stats.multitest import multipletests

    family = [simple(key("bn", lr), key("plain", lr)) for lr in (0.05, 0.5)] + \
             [simple(key(v, 0.5), key(v, 0.05)) for v in ("plain", "bn")]
    m = analyse(family, VALUES)
    assert m == 4
    ps = [c.p for c in family]
    assert [c.p_holm for c in family] == pytest.approx(list(multipletests(ps, 0.05, "holm")[1]))
    assert [c.p_fw for c in family] == pytest.approx(list(multipletests(ps, 0.05, "bonferroni")[1]))
    for c in family:  # the family-wise interval is the (1 - α/m) t-interval, and it agrees with the verdict
        d = np.array(list(c.diffs.values()))
        lo, hi = stats.ttest_1samp(d, 0).confidence_interval(1 - 0.05 / m)
        assert (c.lo_fw, c.hi_fw) == pytest.approx((lo, hi), rel=1e-12)
        assert (c.lo_fw > 0 or c.hi_fw < 0) == (c.p_fw < 0.05)
        assert c.verdict == ("better" if c.lo_fw > 0 else "worse" if c.hi_fw < 0 else "no detectable difference")


def test_interaction_t_squared_is_anovarm_F():
    """The difference of differences, paired by seed, against statsmodels' repeated-measures ANOVA with
    seeds as subjects: the interaction F (1 numerator df) is the square of petri's t."""
    from statsmodels.stats.anova import AnovaRM

    inter = Comparison("x", "y", "interaction", ((key("bn", 0.5), 1.0), (key("plain", 0.5), -1.0),
                                                 (key("bn", 0.05), -1.0), (key("plain", 0.05), 1.0)))
    analyse([inter], VALUES)
    df = pd.DataFrame([{"seed": s, "variant": v, "lr": lr, "acc": VALUES[key(v, lr)][s]}
                       for (v, lr) in CELLS for s in SEEDS])
    table = AnovaRM(df, "acc", "seed", within=["variant", "lr"]).fit().anova_table
    F, p = table.loc["variant:lr", "F Value"], table.loc["variant:lr", "Pr > F"]
    t = inter.mean / (inter.sd / math.sqrt(inter.n))
    assert t ** 2 == pytest.approx(F, rel=1e-9) and inter.p == pytest.approx(p, rel=1e-9)


def test_equivalence_is_tost_at_the_family_level():
    """'equivalent' ⇔ statsmodels' paired TOST rejects at α/m (each one-sided test at α/m) ⇔ the
    (1 − 2α/m) interval lies inside ±margin; that interval is the one printed beside the verdict, and the
    p beside it is TOST's (Bonferroni-adjusted)."""
    from statsmodels.stats.weightstats import ttost_paired

    close = simple(key("bn", 0.05), key("plain", 0.05), margin=0.02)
    far = simple(key("bn", 0.5), key("plain", 0.5), margin=0.02)
    tight = simple(key("bn", 0.05), key("plain", 0.05), margin=0.004)
    family = [close, far, tight]
    m = analyse(family, VALUES)
    for c in family:
        a, b = (np.array([VALUES[k][s] for s in SEEDS]) for k, _ in c.terms)
        p_tost = ttost_paired(a, b, -c.margin, c.margin)[0]
        assert c.p_tost == pytest.approx(min(1.0, p_tost * m), rel=1e-9)
        assert (c.verdict == "equivalent") == (p_tost < 0.05 / m) == (-c.margin < c.lo_eq and c.hi_eq < c.margin)
        d = np.array(list(c.diffs.values()))
        assert (c.lo_eq, c.hi_eq) == pytest.approx(stats.ttest_1samp(d, 0).confidence_interval(1 - 2 * 0.05 / m))
    assert close.verdict == "equivalent" and close.interval == (close.lo_eq, close.hi_eq)
    assert close.p_verdict == close.p_tost
    assert far.verdict == "better" and tight.verdict == "better"  # Δ ≈ 0.5 pp > 0.4
    assert far.interval == (far.lo_fw, far.hi_fw) and far.p_verdict == far.p_fw
    vague = Comparison("a", "b", "x", (("a", 1.0), ("b", -1.0)), margin=0.005)
    analyse([vague], {"a": {0: 0.5, 1: 0.52, 2: 0.49}, "b": {0: 0.5, 1: 0.5, 2: 0.5}})
    assert vague.lo_fw < -0.005 < 0 < vague.hi_fw and vague.verdict == "inconclusive"
    assert verdict(Comparison("a", "b", "x", (), margin=0.1, n=1))[0] == "too few seeds"


def test_p_better_has_an_exact_interval_at_the_family_level():
    """Clopper–Pearson, as scipy's exact binomial test gives it, at the family's level; all wins are no
    certainty (5 of 5: [0.48, 1] at 95 %), and an interaction has none."""
    family = [simple(key("bn", 0.05), key("plain", 0.05)), simple(key("bn", 0.5), key("plain", 0.5))]
    m = analyse(family, VALUES)
    for c in family:
        d = np.array(list(c.diffs.values()))
        wins = int(((d > 0) + 0.5 * (d == 0)).sum())
        assert c.p_better == wins / c.n
        ref = stats.binomtest(wins, c.n).proportion_ci(1 - 0.05 / m, method="exact")
        assert (c.p_better_lo, c.p_better_hi) == pytest.approx((ref.low, ref.high), rel=1e-9)
    five = Comparison("a", "b", "x", (("a", 1.0), ("b", -1.0)))
    analyse([five], {"a": {s: 0.9 + 0.01 * s for s in range(5)}, "b": {s: 0.8 + 0.011 * s for s in range(5)}})
    assert five.p_better == 1.0 and (five.p_better_lo, five.p_better_hi) == pytest.approx((0.478, 1.0), abs=1e-3)
    inter = Comparison("x", "y", "interaction", ((key("bn", 0.5), 1.0), (key("plain", 0.5), -1.0),
                                                 (key("bn", 0.05), -1.0), (key("plain", 0.05), 1.0)))
    analyse([inter], VALUES)
    assert math.isnan(inter.p_better) and math.isnan(inter.p_better_lo)


def test_seeds_needed_is_statsmodels_power_and_rho_saves_seeds():
    from statsmodels.stats.power import TTestPower

    c = simple(key("bn", 0.05), key("plain", 0.05))
    analyse([c], VALUES)
    need = c.seeds_needed(0.01, alpha=0.05 / 3)  # the smallest n whose power (statsmodels') reaches 80 %
    # (statsmodels' solve_power says 2.7 here: its root-finder over a continuous n lands where power is not
    # monotone in n's degrees of freedom; the power at the integers is what a study gets)
    power = [TTestPower().power(effect_size=0.01 / c.sd, nobs=n, alpha=0.05 / 3) for n in (need - 1, need)]
    assert power[0] < 0.8 <= power[1]
    assert c.seeds_needed(0.01) <= need  # a smaller family needs fewer seeds (this one: m = 1)
    # detectable Δ at n seeds: the exact noncentral t at the verdicts' level, as statsmodels solves it
    assert c.detectable == pytest.approx(TTestPower().solve_power(nobs=7, alpha=0.05, power=0.8) * c.sd, rel=1e-6)
    # ... so that a study with the seeds needed for the detectable difference has 7 of them
    assert c.seeds_needed(c.detectable * 1.0001) == 7
    a, b = (np.array([VALUES[k][s] for s in SEEDS]) for k, _ in c.terms)
    assert c.rho == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert c.rho > 0.5 and pairing_gain(c.rho) == pytest.approx(1 / (1 - c.rho))  # the shared seed effect


def test_no_spread_gives_no_verdict_missing_seeds_and_too_few():
    """Every seed the same difference: no spread to test against, so no verdict (not p = 0)."""
    values = {"a": {0: 0.75, 1: 0.5, 2: 0.25, 5: 0.1}, "b": {0: 0.5, 1: 0.25, 2: 0.0, 3: 0.5}}
    c = Comparison("a", "b", "x", (("a", 1.0), ("b", -1.0)))
    analyse([c], values)
    assert c.n == 3 and c.dropped == 2 and c.mean == 0.25 and math.isnan(c.lo_fw) and math.isnan(c.p)
    assert c.verdict == "withheld" and "no spread" in c.reason and math.isnan(c.p_wilcoxon)
    two = Comparison("a", "b", "x", (("a", 1.0), ("b", -1.0)))  # the case: one test image better, twice
    analyse([two], {"a": {0: 0.9501, 1: 0.9601}, "b": {0: 0.95, 1: 0.96}})
    assert two.verdict == "withheld" and math.isnan(two.detectable)
    one = Comparison("a", "b", "x", (("a", 1.0), ("b", -1.0)))
    analyse([one], {"a": {0: 0.5}, "b": {0: 0.4}})
    assert one.verdict == "too few seeds" and math.isnan(one.p)


def _snapshot(design: dict, baseline: str, point=None, analysis=None, val=None, config=None) -> Snapshot:
    """A snapshot of (variant, point as JSON) -> per-seed accuracies, finished cells with one epoch each."""
    from petri.analysis.records import Epoch

    places = []
    for (variant, pt), accs in design.items():
        for seed, acc in accs.items():
            h = f"{variant}{pt}{seed}"
            metrics = {"test_acc": acc, "test_loss": 1 - acc, "train_acc": acc, "train_loss": 0.1,
                       "val_acc": val(variant, pt) if val else None}
            places.append(Place(variant, json.loads(pt), seed, h, Status.DONE, epochs=(Epoch(h, 1, metrics),),
                                config=(config or {}).get(variant, {})))
    return Snapshot("t", places, baseline, point, repr(baseline), analysis or Analysis())


DESIGN = {key(v, lr): VALUES[key(v, lr)] for (v, lr) in CELLS}


def test_a_declared_comparison_gives_simple_effects_sweep_effects_and_the_interaction():
    f = findings(_snapshot(DESIGN, "plain", {"lr": 0.05}, Analysis(compare=[Question("bn", "plain")])))
    kinds = [(c.kind, c.at) for c in f.family]
    assert kinds == [("simple effect", "lr=0.05"), ("simple effect", "lr=0.5"),
                     ("simple effect", "bn: lr=0.5 vs lr=0.05"), ("simple effect", "plain: lr=0.5 vs lr=0.05"),
                     ("interaction", "lr=0.5 vs lr=0.05")]
    assert f.m == 5 and all(r.effect is None for r in f.rows)  # declared: no "each vs the reference"
    assert [r.verdict for r in f.rows].count("baseline") == 1  # ... but the reference is still named
    bn_high = f.family[1]
    assert bn_high.mean == pytest.approx(0.36, abs=0.01) and bn_high.verdict == "better"
    inter = f.family[-1]
    assert inter.mean == pytest.approx(bn_high.mean - f.family[0].mean) and inter.verdict == "positive"


def test_without_declarations_each_vs_reference_plus_a_crossed_design():
    f = findings(_snapshot(DESIGN, "plain", {"lr": 0.05}))
    ref = [c for c in f.family if c.kind == "vs reference"]
    assert len(ref) == 3 and {c.b for c in ref} == {"plain (lr=0.05)"}
    # bn@0.05 - plain@0.05 and plain's sweep effect are already "vs reference": not tested twice
    assert [(c.kind, c.at) for c in f.declared] == [("simple effect", "lr=0.5"), ("simple effect", "bn: lr=0.5 vs lr=0.05"),
                                                    ("interaction", "lr=0.5 vs lr=0.05")]
    assert f.m == 6
    # a study that does not cross keeps today's comparisons and only them
    f = findings(_snapshot({("a", "{}"): {0: 0.9, 1: 0.91, 2: 0.92}, ("b", "{}"): {0: 0.8, 1: 0.82, 2: 0.83}}, "a"))
    assert [c.kind for c in f.family] == ["vs reference"] and f.rows[1].verdict == "worse"


def test_analysis_table_errors_name_the_field():
    variants = {"plain": {}, "bn": {}, "inverted-bn": {}}
    assert parse_analysis({"compare": ["inverted-bn - plain"], "margin": 0.5}, variants, "s.toml").compare == \
        [Question("inverted-bn", "plain", 0.005)]
    assert parse_analysis({"compare": [{"compare": "bn - plain", "margin": 2}], "metric": "test_loss"}, variants,
                          "s.toml").compare == [Question("bn", "plain", 2.0)]
    for raw, msg in [({"compare": ["bn-plain"]}, "s.toml: analysis.compare[0]: 'bn-plain' is not \"A - B\""),
                     ({"compare": ["bn - nope"]}, "s.toml: analysis.compare[0]: 'nope' is not a variant; variants: plain"),
                     ({"compare": ["bn - bn"]}, "compares 'bn' with itself"),
                     ({"metric": "acc"}, "s.toml: analysis.metric: 'acc' is not a metric; allowed: test_acc"),
                     ({"margin": -1}, "s.toml: analysis.margin: must be a positive number (percentage points)"),
                     ({"margin": True}, "analysis.margin: must be a positive number"),
                     ({"compre": []}, "s.toml: analysis: unknown field 'compre'; allowed: compare, failed, margin, metric"),
                     ({"failed": "drop"}, "s.toml: analysis.failed: 'drop' is not allowed; allowed: withhold, chance"),
                     ({"failed": "chance", "metric": "test_loss"}, "analysis.failed: \"chance\" counts a diverged cell"),
                     ({"compare": "bn - plain"}, "analysis.compare: must be a list")]:
        with pytest.raises(SpecError, match=None) as e:
            parse_analysis(raw, variants, "s.toml")
        assert str(e.value).startswith(msg) or msg in str(e.value), str(e.value)


CROSSED = """
name = "crossed"
data = "mnist"
seeds = 3
baseline = "plain"
baseline_point = { lr = 0.05 }

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = { values = [0.05, 2.0] } }
batch_size = 100
epochs = 1
train_size = 2000
test_size = 500

[variants.plain]
[variants.bn]
recipe = { model = { name = "mlp", hidden = [16], bn = true } }
ANALYSIS
"""


def test_a_crossed_study_through_the_cli_and_the_api(tmp_path):
    """Run, show, plan, report and the API on a real 2 × 2 study; then a question added to [analysis]
    after the run is answered by the next run, which trains nothing."""
    from typer.testing import CliRunner

    import petri
    from petri.cli import app

    runner, study, out = CliRunner(), tmp_path / "crossed.toml", tmp_path / "out"
    study.write_text(CROSSED.replace("ANALYSIS", ""))
    r = runner.invoke(app, ["run", str(study), "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "comparisons (the report adds" in r.output and "interaction" not in r.output.split("comparisons")[0]
    assert "epoch 1/1: mean test accuracy" in r.output  # not a terminal: a line per finished epoch
    res = petri.open_study(out)
    comps = res.comparisons()
    assert list(comps["kind"]) == ["vs reference"] * 3 + ["simple effect", "simple effect", "interaction"]
    assert (comps["family_size"] == 6).all() and (comps["n"] == 3).all()
    inter = comps[comps["kind"] == "interaction"].iloc[0]
    assert inter["diff"] > 0.2 and inter["verdict"] in ("positive", "no detectable difference")  # plain fails at lr 2
    md = (out / "report" / "report.md").read_text()
    assert "## Comparisons" in md and "![bn and plain across lr](figures/interaction-bn-plain.png)" in md
    assert "![Comparisons](figures/comparisons.png)" in md and "![Paired differences]" in md
    assert (out / "report" / "comparisons.csv").read_text().count("\n") == 7
    asked = res.compare("bn", "plain", margin=0.5, detect=0.01)
    assert list(asked["kind"]) == ["simple effect"] * 2 + ["simple effect"] * 2 + ["interaction"]
    assert (asked["family_size"] == 5).all() and (asked["seeds_needed"] >= 2).all()
    with pytest.raises(petri.PetriError, match="compare: 'nope' is not a variant; variants: plain, bn"):
        res.compare("nope", "plain")
    r = runner.invoke(app, ["plan", str(out), "--detect", "1"], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "seeds to detect 1 pp" in r.output and "bn (lr=2) − plain (lr=2)" in r.output
    r = runner.invoke(app, ["plan", str(out), "--detect", "-1"])
    assert r.exit_code == 2 and "--detect: must be a positive number" in r.stderr
    study.write_text(CROSSED.replace("ANALYSIS", '[analysis]\ncompare = ["bn - plain"]\nmetric = "test_loss"'))
    r = runner.invoke(app, ["run", str(study), "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "nothing to train" in r.output
    comps = petri.open_study(out).comparisons()
    assert "vs reference" not in set(comps["kind"]) and set(comps["metric"]) == {"test_loss"} and len(comps) == 5
    assert "test_loss (mean ± 95 % CI)" in r.output


def _sequential(effect: float, studies: int, rule, seed: int, looks: int | None = None) -> tuple[float, float, list]:
    """Simulated adaptive studies of one paired comparison (per-seed differences ~ N(effect, 1)), looked at
    after every round of ``rule``: the share that call a difference, the mean seeds at which they stopped,
    and the per-study (stop, verdict). Vectorised over studies; ``test_simulation_decides_as_analyse``
    checks its decision against petri's own on a sample."""
    gen = np.random.default_rng(seed)
    d = gen.normal(effect, 1.0, (studies, rule.max))
    alpha = 0.05 / (looks if looks is not None else rule.looks)
    open_, stop, verdict = np.ones(studies, bool), np.full(studies, rule.max), np.full(studies, "", dtype=object)
    for n in rule.rounds():
        x = d[:, :n]
        half = stats.t.ppf(1 - alpha / 2, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
        lo, hi = x.mean(axis=1) - half, x.mean(axis=1) + half
        decided = open_ & ((lo > 0) | (hi < 0) | (n == rule.max))
        verdict[decided] = np.where(lo[decided] > 0, "better", np.where(hi[decided] < 0, "worse",
                                                                           "no detectable difference"))
        stop[decided] = n
        open_ &= ~decided
    called = np.isin(verdict, ["better", "worse"])
    return float(called.mean()), float(stop.mean()), list(zip(stop, verdict, d))


def test_simulation_decides_as_analyse():
    """The vectorised rule above is petri's: analyse + target_met at every look give the same stops and verdicts."""
    from petri.analysis.family import target_met
    from petri.study.seeds import parse_adaptive

    rule = parse_adaptive({"min": 3, "max": 12}, "sim", 100)
    for effect in (0.0, 0.8):
        for stop, verdict_, d in _sequential(effect, 12, rule, 7)[2]:  # (statsmodels: ~40 ms a call)
            for n in rule.rounds():
                c = Comparison("a", "b", "simple effect", (("a", 1.0), ("b", -1.0)))
                analyse([c], {"a": dict(enumerate(d[:n])), "b": dict.fromkeys(range(n), 0.0)}, looks=rule.looks,
                        extras=False)
                if target_met([c], rule.until, rule.width) or n == rule.max:
                    assert (n, c.verdict) == (stop, verdict_)
                    break


def test_looking_after_every_seed_keeps_false_positives_below_alpha():
    """2,000 simulated studies without a true effect, looked at after every seed from 3 to 20: at most α
    of them call a difference. With a true effect of one standard deviation they stop early on average.
    The same looks at an unsplit α call far more: the split is what keeps the rate down."""
    from petri.study.seeds import parse_adaptive

    rule = parse_adaptive({"min": 3, "max": 20}, "sim", 100)
    assert rule.looks == 18 and rule.rounds() == list(range(3, 21))
    false_rate, _, _ = _sequential(0.0, 2000, rule, 0)
    assert false_rate <= 0.05
    true_rate, mean_stop, _ = _sequential(1.0, 2000, rule, 1)
    assert mean_stop < rule.max - 5 and true_rate > 0.8
    assert _sequential(0.0, 2000, rule, 2, looks=1)[0] > 0.1


def test_adaptive_seeds_syntax():
    from petri.study.seeds import parse_adaptive

    r = parse_adaptive({"min": 3, "max": 10, "step": 3, "until": {"width": 0.5}}, "s.toml", 100)
    assert r.rounds() == [3, 6, 9, 10] and r.looks == 4 and r.until == "width" and r.width == 0.005
    for raw, msg in [({"min": 3}, "s.toml: seeds: an adaptive table is"),
                     ({"min": 1, "max": 5}, "s.toml: seeds: needs 2 <= min < max"),
                     ({"min": 3, "max": 3}, "needs 2 <= min < max"),
                     ({"min": 3, "max": 5, "step": 0}, "s.toml: seeds.step: must be an integer 1..100"),
                     ({"min": 3, "max": 5, "until": "done"}, "s.toml: seeds.until: 'done' is not a target")]:
        with pytest.raises(SpecError) as e:
            parse_adaptive(raw, "s.toml", 100)
        assert msg in str(e.value), str(e.value)


def test_seeds_added_by_hand_are_counted_as_looks(tmp_path):
    from typer.testing import CliRunner

    from petri.cli import app

    runner, study, out = CliRunner(), tmp_path / "s.toml", tmp_path / "out"
    text = CROSSED.replace("ANALYSIS", "").replace('lr = { values = [0.05, 2.0] }', "lr = 0.05")
    text = text.replace('baseline_point = { lr = 0.05 }\n', "")
    for seeds in ("2", "3", "[0, 1, 2, 3]"):
        study.write_text(text.replace("seeds = 3", f"seeds = {seeds}"))
        r = runner.invoke(app, ["run", str(study), "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert "computed before on other seeds (2 earlier runs with results)" in r.stderr
    assert "**Repeated looks.** These verdicts were computed before" in (out / "report" / "report.md").read_text()


def test_best_point_is_chosen_on_validation_and_test_selected_cells_stay_out():
    """The reference among a sweep's points is the best on validation accuracy, not on test accuracy; a row
    whose cells stopped on test data is shown but never compared."""
    design = {("base", '{"lr": 1}'): {0: 0.90, 1: 0.91}, ("base", '{"lr": 2}'): {0: 0.95, 1: 0.96},
              ("other", "{}"): {0: 0.93, 1: 0.94}, ("peeked", "{}"): {0: 0.99, 1: 0.98}}
    # validation accuracy says lr 1 is the best point (its test accuracy says lr 2)
    f = findings(_snapshot(design, "base", "best", val=lambda v, pt: 0.99 if pt == '{"lr": 1}' else 0.5,
                           config={"peeked": {"recipe": {"early_stopping": {"monitor": "test_acc", "on_test": True}}}}))
    ref = next(r for r in f.rows if r.verdict == "baseline")
    assert ref.point == {"lr": 1}
    peeked = next(r for r in f.rows if r.variant == "peeked")
    assert peeked.verdict == "stopped on test data: not compared" and peeked.effect is None
    assert all("peeked" not in c.a for c in f.family) and f.m == 2
