"""bench / profile / report / pick on tiny settings (timings themselves are not asserted)."""
import json

import pytest

from edgevision.bench.pick import NoModelFits, pick
from edgevision.bench.profile import format_profile, run_profile
from edgevision.bench.report import pareto_front, write_report
from edgevision.bench.runner import benchmark, load_json, save_json
from edgevision.cli import main
from edgevision.errors import ConfigError, EdgeVisionError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))


def test_bench_backends_and_cache(tmp_path):
    kw = dict(batch=2, resolution=64, threads=1, progress=False, budget_s=0.2)
    res = benchmark(["mobilenetv3_small_075"], ["torch", "torch-cl", "ort", "openvino"], **kw)
    assert [r.backend for r in res] == ["torch", "torch-cl", "ort", "openvino"]
    for r in res:
        assert r.precision == "fp32" and r.batch == 2 and r.resolution == (64, 64)
        assert r.median_ms > 0 and r.images_per_s == pytest.approx(2000 / r.median_ms)
        assert r.p10_ms <= r.median_ms <= r.p90_ms and not r.cached
        assert "cores" in r.machine
    again = benchmark(["mobilenetv3_small_075"], ["torch"], **kw)
    # a steady figure is reused; a noisy one (a busy machine) is measured again
    assert again[0].cached == res[0].steady
    if again[0].cached:
        assert again[0].median_ms == res[0].median_ms and again[0].measured_at == res[0].measured_at
    save_json(res, tmp_path / "r.json")
    assert [r.backend for r in load_json(tmp_path / "r.json")] == [r.backend for r in res]
    md, png = write_report(res, tmp_path / "rep")
    assert "mobilenetv3_small_075" in md.read_text() and png.stat().st_size > 5000


def test_pareto_front():
    pts = [(1.0, 70.0), (2.0, 69.0), (3.0, 75.0), (2.5, 80.0)]
    assert sorted(pareto_front(pts)) == [0, 3]


def test_profile_torch_shows_time_macs_and_intensity():
    stats = run_profile("mobilenetv3_small_075", "torch", 64)
    convs = [s for s in stats if s.kind == "Conv2d"]
    assert sum(s.macs for s in stats) > 0 and all(s.ms > 0 for s in stats)
    dw = [s for s in convs if "conv_dw" in s.name]
    pw = [s for s in convs if "conv_pw." in s.name]
    # depthwise convs move more bytes per MAC than pointwise ones: lower arithmetic intensity
    assert max(s.intensity for s in dw) < max(s.intensity for s in pw)
    text = format_profile(stats, 5)
    assert "MACs/byte" in text and "By op" in text


def test_pick_within_budget_and_impossible_budget():
    p = pick(1e6, family="mobilenetv3", max_params=2.1, threads=1, progress=False, budget_s=0.1)
    assert p.choice.model == "mobilenetv3_small_075"  # the only one under 2.1M params
    with pytest.raises(NoModelFits, match="fastest is"):
        pick(1e-6, family="mobilenetv3", max_params=2.1, threads=1, progress=False, budget_s=0.1)


def test_pick_optimized_only_trusts_this_machine(tmp_path, capsys):
    """A folder optimize did not write is one line; an artifact timed on another CPU never answers
    a budget here (the format itself is checked against a real optimize run in test_optimize)."""
    import json

    from edgevision.bench.latency import cpu_description
    from edgevision.bench.pick import pick_optimized
    assert main(["pick", "--budget-ms", "10", "--optimized", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    win = {"candidate": {"name": "openvino int8"}, "speedup": {"1": 2.0}, "latency_ms": {"1": [4.0, 2.0]},
           "top1_agreement": 99.5}
    payload = {"model": "mobilenetv3_small_075", "winner": "openvino int8", "runtime": "openvino",
               "precision": "int8", "artifact": "mobilenetv3_small_075.xml", "resolution": [224, 224],
               "batches": [1], "held_out": 200, "speed_only": False, "weights": "w.safetensors",
               "machine": cpu_description(), "date": "2026-12-03 16:00 UTC", "candidates": [win]}
    (tmp_path / "results.json").write_text(json.dumps(payload))
    assert pick_optimized(2.5, [tmp_path]).choice.latency_ms == {1: 2.0}
    payload["machine"] = "Another CPU, 64 cores, ISA: AVX2, torch 2.0 (1 threads)"
    (tmp_path / "results.json").write_text(json.dumps(payload))
    with pytest.raises(NoModelFits, match="another machine"):
        pick_optimized(2.5, [tmp_path])


def test_bad_backends(capsys, monkeypatch):
    with pytest.raises(ConfigError, match="unknown backend"):
        benchmark(["mobilenetv3_small_075"], ["tensorrt"], progress=False)
    import edgevision.bench.backends as be
    monkeypatch.setitem(be._NEEDS, "ort", ("not_a_real_runtime_xyz", "not-a-real-runtime"))
    assert main(["bench", "mobilenetv3_small_075", "--backends", "ort"]) == 2
    err = capsys.readouterr().err
    assert "not installed" in err and "pip install not-a-real-runtime" in err
    assert main(["pick", "--budget-ms", "-1"]) == 2
