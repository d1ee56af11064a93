"""The latency cache keeps only figures a user can trust, keyed by their settings, dated in every
report; the Pareto plot's ticks and legend. Timings come from a fake clock that advances only when
the model "runs", so every figure here is exact and nothing depends on how busy the machine is."""
import itertools
import re
import types

import pytest

import edgevision.bench.cache as cache
import edgevision.bench.latency as latency
import edgevision.bench.runner as runner
from edgevision.bench.pick import pick
from edgevision.bench.report import markdown_table, pareto_figure, plain_log_ticks, write_report
from edgevision.bench.runner import benchmark, format_results

MODEL = "mobilenetv3_small_075"
KW = dict(threads=1, progress=False)
NOISY = [2.6, 7.2, 6.9, 2.7, 7.0, 6.9]  # ms per call: the reported case, p10-p90 2.6-7.2 ms
STEADY = [2.6, 2.62, 2.58]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def timer(monkeypatch):
    """timer(ms): from now on each model call takes the next of ``ms`` (a list is cycled)."""
    clock = types.SimpleNamespace(t=0.0, steps=iter(()), calls=0)
    monkeypatch.setattr(latency, "time", types.SimpleNamespace(perf_counter=lambda: clock.t))
    make = runner.make_runner

    def fake_make(*a, **k):
        r = make(*a, **k)

        def run():
            clock.calls += 1
            clock.t += next(clock.steps) / 1e3
        r.run = run
        return r
    monkeypatch.setattr(runner, "make_runner", fake_make)

    def set_steps(ms):
        clock.steps = itertools.cycle(ms) if isinstance(ms, list) else iter(ms)
        return clock
    return set_steps


def bench(budget_s=0.2, **kw):
    return benchmark([MODEL], ["torch"], kw.pop("batch", 1), kw.pop("resolution", 32), budget_s=budget_s,
                     **{**KW, **kw})[0]


def test_noisy_figure_is_not_cached_nor_reused(timer):
    # pick measured it noisy with a 1 s budget; the demo then asked with 1.5 s
    timer(NOISY)
    first = bench(budget_s=1.0)
    assert (first.p10_ms, first.p90_ms) == pytest.approx((2.6, 7.2)) and first.median_ms == pytest.approx(6.9)
    assert first.spread > cache.MAX_SPREAD and not first.steady and not first.cached
    assert cache.load() == {}  # nothing stored
    timer(STEADY)
    again = bench(budget_s=1.0)  # the same settings measure again
    assert not again.cached and again.median_ms == pytest.approx(2.6)
    assert "noisy" in format_results([first]) and "noisy" in markdown_table([first])


def test_a_noisy_attempt_is_measured_again(timer, monkeypatch):
    monkeypatch.setattr(cache, "ATTEMPTS", 1)
    clock = timer(NOISY)
    bench(use_cache=False)
    one_attempt = clock.calls  # the calls a single noisy measurement takes (warm-up included)
    monkeypatch.setattr(cache, "ATTEMPTS", 2)
    timer(itertools.chain(itertools.islice(itertools.cycle(NOISY), one_attempt), itertools.repeat(2.6)))
    clock.calls = 0
    r = bench()  # a burst of other work during the first attempt, quiet for the second
    assert r.steady and r.median_ms == pytest.approx(2.6) and clock.calls > one_attempt
    assert bench().cached


def test_steady_figure_is_reused_with_its_date(timer):
    timer(STEADY)
    first = bench()
    assert first.steady and not first.cached and first.measured_at
    clock = timer(NOISY)
    calls = clock.calls
    again = bench()
    assert again.cached and again.median_ms == first.median_ms and again.measured_at == first.measured_at
    assert clock.calls == calls  # nothing ran


def test_noisy_remeasure_drops_the_older_figure(timer):
    timer(STEADY)
    bench(budget_s=0.2)
    timer(NOISY)
    assert not bench(budget_s=0.4).cached  # a longer budget measures again, noisy this time
    assert cache.load() == {}  # the shorter steady figure is no longer vouched for
    assert not bench(budget_s=0.1).cached


def test_longer_budget_measures_again(timer):
    timer(STEADY)
    bench(budget_s=0.2)
    assert bench(budget_s=0.1).cached  # a shorter budget is satisfied by a longer measurement
    timer([3.0])
    longer = bench(budget_s=0.4)
    assert not longer.cached and longer.median_ms == pytest.approx(3.0)
    (entry,) = cache.load().values()
    assert entry["budget_s"] == 0.4  # the longer measurement replaced the shorter one
    assert bench(budget_s=0.4).cached and bench(budget_s=0.3).median_ms == pytest.approx(3.0)


BASE = dict(threads=1, model=MODEL, backend="torch", batch=1, resolution=(32, 32), weights="", device="cpu")


@pytest.mark.parametrize("change", [dict(threads=2), dict(model="mobilenetv3_small_100"), dict(backend="ort"),
                                    dict(batch=16), dict(resolution=(32, 48)), dict(weights="pretrained:x"),
                                    dict(device="cuda:0")], ids=lambda c: next(iter(c)))
def test_cache_key_includes_each_setting(change):
    assert cache.settings_key(**{**BASE, **change}) != cache.settings_key(**BASE)


def test_cache_key_includes_versions_warmup_runs_and_weights_file(monkeypatch, tmp_path):
    base = cache.settings_key(**BASE)
    assert cache.settings_key(**BASE) == base
    for const, value in (("WARMUP", cache.WARMUP + 1), ("MIN_RUNS", cache.MIN_RUNS + 1),
                         ("ATTEMPTS", cache.ATTEMPTS + 1)):
        with monkeypatch.context() as m:
            m.setattr(cache, const, value)
            assert cache.settings_key(**BASE) != base
    with monkeypatch.context() as m:
        versions = cache.library_versions()
        m.setattr(cache, "library_versions", lambda: {**versions, "onnxruntime": "0.0.1"})
        assert cache.settings_key(**BASE) != base
    w = tmp_path / "best.safetensors"
    w.write_bytes(b"a" * 10)
    k1 = cache.settings_key(**{**BASE, "weights": str(w)})
    w.write_bytes(b"b" * 11)  # retrained at the same path
    assert cache.settings_key(**{**BASE, "weights": str(w)}) != k1


def test_other_settings_never_reuse_a_figure(timer):
    timer(STEADY)
    bench()
    assert bench().cached
    timer([4.0])
    for kw in (dict(batch=2), dict(resolution=48), dict(threads=2)):
        other = bench(**kw)
        assert not other.cached and other.median_ms == pytest.approx(4.0), kw


def test_cached_rows_carry_their_date_in_every_report(timer, tmp_path):
    timer(STEADY)
    bench(budget_s=0.2)
    r = bench(budget_s=0.2)
    assert r.cached and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", r.measured_at)
    mark = f"cached, measured {r.measured_at}"
    assert mark in format_results([r])
    md, _ = write_report([r], tmp_path / "rep")
    assert mark in md.read_text()
    first = pick(1e6, family="mobilenetv3", max_params=2.1, budget_s=0.2, **KW).choice  # at 224 px
    p = pick(1e6, family="mobilenetv3", max_params=2.1, budget_s=0.2, **KW)
    assert p.choice.cached and f"cached, measured {first.measured_at}" in dict(p.table)[MODEL]


def test_pick_cli_marks_cached_figures(timer, capsys):
    from edgevision.cli import main
    timer(STEADY)
    args = ["pick", "--budget-ms", "1000", "--family", "mobilenetv3", "--max-params", "2.1", "--threads", "1",
            "--budget-s", "0.2"]
    assert main(args) == 0
    assert "cached" not in capsys.readouterr().out.split("spread =")[0]
    assert main(args) == 0
    out = capsys.readouterr().out
    table, line = out.split("pick:")
    assert f"{MODEL} " in table and "cached, measured" in table.split(f"{MODEL} ")[1].splitlines()[0]
    assert "cached, measured" in line
    assert main(args + ["--no-cache"]) == 0 and "cached, measured" not in capsys.readouterr().out


def test_demo_report_marks_cached_pareto_rows(timer):
    from edgevision.bench.report import demo_report
    from edgevision.pipeline import TOY
    timer(STEADY)
    fresh = bench()
    cached = bench()
    ev = {k: {"model": MODEL, "top1": 50.0, "top5": 90.0} for k in ("teacher", "student_kd", "student_baseline")}
    results = {"evaluate": ev, "export": {"params": 1, "params_reparameterized": 1, "size_mb": 1.0,
                                          "max_abs_diff": {"1": 1e-6}},
               "optimize": {"resolution": [32, 32], "batches": [1], "held_out": 24, "max_drop": 0.01,
                            "headline": "nothing verified beats onnxruntime fp32", "candidates": []},
               "bench": {"student": [fresh.to_json()], "pareto": [cached.to_json()]}}
    text = demo_report(TOY, results, {"bench": 1.0}, "cpu")
    assert f"cached, measured {cached.measured_at}" in text and f"| {fresh.measured_at} |" in text


def _tick_labels(ax):
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.parametrize("lo,hi", [(2.6, 7.2), (0.35, 300.0), (40.0, 46.0), (1.0, 10.0)])
def test_log_ticks_are_plain_milliseconds(lo, hi):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = plain_log_ticks(ax.xaxis, lo, hi)
    labels = _tick_labels(ax)
    plt.close(fig)
    assert len(labels) >= 2 and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in labels), labels
    assert [float(t) for t in labels] == pytest.approx(ticks)


def test_pareto_plot_plain_ticks_and_legend_clear_of_points(timer):
    import matplotlib.pyplot as plt
    timer(STEADY)
    bench()
    rs = [bench(), benchmark(["mobilenetv3_small_100"], ["torch"], 1, 32, budget_s=0.2, **KW)[0]]
    rs[1].median_ms, rs[1].p10_ms, rs[1].p90_ms = 6.9, 2.6, 7.2  # the reported noisy figure
    fig = pareto_figure(rs)
    ax = fig.axes[0]
    names = sorted(t.get_text() for t in ax.texts)
    assert names == [f"{MODEL} *", "mobilenetv3_small_100 (noisy)"]  # cached starred, noisy said so
    assert any("measured " + rs[0].measured_at in t.get_text() for t in fig.texts)
    labels = _tick_labels(ax)
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in labels), labels
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())  # the legend sits outside the axes
    for text in ax.texts:  # the point labels
        assert not legend.overlaps(text.get_window_extent())
    plt.close(fig)
