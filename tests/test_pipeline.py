"""The main job at toy size: every step runs, outputs exist, a rerun reuses finished steps, and a
failing step is named."""
import json

import pytest

from edgevision.pipeline import TOY, Pipeline, PipelineError


def test_demo_pipeline_toy(tmp_path):
    logs = []
    res = Pipeline(tmp_path, TOY, log=logs.append, workers=0).run()
    for f in ("report.md", "pareto.png", "student.onnx", "student_int8.onnx", "student_int8.xml",
              "teacher/curves.png", "student_kd/best.safetensors", "student_baseline/confusion.png"):
        assert (tmp_path / f).is_file(), f
    report = (tmp_path / "report.md").read_text()
    assert "student, distilled" in report and "| ort-int8 | int8 |" in report
    assert set(res["quantize"]) == {"onnxruntime", "openvino"}
    assert max(res["export"]["max_abs_diff"].values()) < 1e-3
    # rerun: every step is reused, nothing recomputed
    logs2 = []
    Pipeline(tmp_path, TOY, log=logs2.append, workers=0).run()
    assert sum("done earlier, reusing" in l for l in logs2) == 8
    # a broken step is named: remove the ONNX file the quantize step needs
    (tmp_path / "quantize.done.json").unlink()
    (tmp_path / "student.onnx").unlink()
    with pytest.raises(PipelineError, match="step 'quantize'"):
        Pipeline(tmp_path, TOY, log=lambda m: None, workers=0).run()
