"""The main job at toy size: every step runs, outputs exist, a rerun reuses finished steps, and a
failing step is named."""
from pathlib import Path

import pytest

from edgevision.pipeline import TOY, Pipeline, PipelineError, deploy_line, summary


def test_demo_pipeline_toy(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))  # optimize builds, not reuses
    logs = []
    res = Pipeline(tmp_path / "run", TOY, log=logs.append, workers=0).run()
    tmp_path = tmp_path / "run"
    for f in ("report.md", "pareto.png", "student.onnx", "deploy/report.md", "deploy/results.json",
              "deploy/plot.png", "teacher/curves.png", "student_kd/best.safetensors",
              "student_baseline/confusion.png"):
        assert (tmp_path / f).is_file(), f
    report = (tmp_path / "report.md").read_text()
    assert "student, distilled" in report and "| ort-int8 | int8 |" in report
    # the deploy step is one optimize run on the distilled student, over both runtimes, INT8 included
    o = res["optimize"]
    assert o["model"] == TOY.student and o["resolution"] == [TOY.deploy_resolution] * 2
    assert {c["candidate"]["runtime"] for c in o["candidates"]} == {"onnxruntime", "openvino"}
    assert {"onnxruntime int8", "openvino int8"} <= {c["candidate"]["name"] for c in o["candidates"]}
    assert (tmp_path / "deploy" / f"{TOY.student}{Path(o['paths']['artifact']).suffix}").is_file()
    assert o["headline"] in report and o["winner"] in summary(res, tmp_path)
    assert max(res["export"]["max_abs_diff"].values()) < 1e-3
    # rerun: every step is reused, nothing recomputed
    logs2 = []
    Pipeline(tmp_path, TOY, log=logs2.append, workers=0).run()
    assert sum("done earlier, reusing" in l for l in logs2) == 8
    # a broken step is named: remove the student weights the optimize step needs
    (tmp_path / "optimize.done.json").unlink()
    (tmp_path / "student_kd" / "best.safetensors").unlink()
    with pytest.raises(PipelineError, match="step 'optimize'"):
        Pipeline(tmp_path, TOY, log=lambda m: None, workers=0).run()


def _optimized(winner: str, reference: bool) -> dict:
    cand = {"candidate": {"name": winner}, "speedup": {"1": 2.5, "16": 3.25}, "top1_agreement": 99.5}
    return {"resolution": [224, 224], "batches": [1, 16], "winner": winner, "reference": reference,
            "candidates": [cand]}


def test_deploy_line_says_plainly_when_nothing_beats_fp32():
    line = deploy_line(_optimized("openvino int8 quantize SE", False))
    assert "openvino int8 quantize SE 2.50x at bs1, 3.25x at bs16" in line and "224 px" in line
    assert "99.5% agreement" in line and "nothing" not in line
    line = deploy_line(_optimized("onnxruntime fp32", True))
    assert "nothing verified beats onnxruntime fp32" in line
