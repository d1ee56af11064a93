"""The main job (`make demo` / `edgevision demo`): train -> distill -> evaluate -> reparameterize ->
export -> optimize (the fastest verified artifact of the student) -> benchmark -> report, offline,
on this machine.

Each step writes its outputs under the run directory and a ``<step>.done.json`` marker with its
results; a rerun skips steps whose marker exists (delete the marker or pass ``--fresh`` to redo
one). A failing step is named in the error. Sizes: "full" (the demo, < 10 min on 2 cores) and
"toy" (the test, well under a minute).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import EdgeVisionError
from .files import atomic_write


class PipelineError(EdgeVisionError):
    pass


@dataclass(frozen=True)
class DemoPlan:
    teacher: str = "mobilenetv3_large_100"
    student: str = "mobilenetv3_small_075"
    resolution: int = 64
    teacher_epochs: int = 6
    student_epochs: int = 5
    train_size: int = 4800
    val_size: int = 1200
    batch_size: int = 64
    lr: float = 6e-3
    calib_images: int = 64
    held_out: int = 300
    bench_budget_s: float = 1.5
    # the deploy step (`edgevision optimize` on the distilled student): at 64 px the 1 M-parameter
    # student is too little work for INT8 to pay off, so it is deployed at a larger input size
    # (agreement with fp32 is measured on held-out images at that size)
    deploy_resolution: int = 224
    deploy_batches: tuple[int, ...] = (1, 16)
    deploy_runtimes: tuple[str, ...] = ("onnxruntime", "openvino")
    deploy_rounds: int = 3
    pareto_models: tuple[str, ...] = ("mobilenetv3_small_075", "mobilenetv3_small_100", "mobilenetv3_large_100",
                                      "mobilenetv4_conv_small", "tf_efficientnet_lite0", "mobilenetv2_100")


TOY = DemoPlan(teacher="mobilenetv3_small_100", student="mobilenetv3_small_075", resolution=32,
               teacher_epochs=1, student_epochs=1, train_size=64, val_size=48, batch_size=16,
               calib_images=8, held_out=24, bench_budget_s=0.2,
               pareto_models=("mobilenetv3_small_075", "mobilenetv3_small_100"),
               deploy_resolution=32, deploy_batches=(1,), deploy_rounds=1)


class Pipeline:
    def __init__(self, out: str | Path, plan: DemoPlan, fresh: bool = False, log: Callable = print,
                 workers: int = 2):
        self.out, self.plan, self.log, self.workers = Path(out), plan, log, workers
        self.out.mkdir(parents=True, exist_ok=True)
        if fresh:
            for p in self.out.glob("*.done.json"):
                p.unlink()
        self.results: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}

    def step(self, name: str, title: str, fn: Callable[[], dict]) -> dict:
        marker = self.out / f"{name}.done.json"
        if marker.exists():
            saved = json.loads(marker.read_text())
            res, self.seconds[name] = saved["result"], saved["seconds"]
            self.log(f"[{name}] {title}: done earlier, reusing ({marker.name})")
        else:
            self.log(f"[{name}] {title} ...")
            t0 = time.perf_counter()
            try:
                res = fn()
            except EdgeVisionError as e:
                raise PipelineError(f"step '{name}' ({title}) failed: {e}") from e
            except Exception as e:  # an unexpected bug: still name the step
                raise PipelineError(f"step '{name}' ({title}) failed: {type(e).__name__}: {e}") from e
            self.seconds[name] = round(time.perf_counter() - t0, 1)
            with atomic_write(marker, ".json") as tmp:
                tmp.write_text(json.dumps({"result": res, "seconds": self.seconds[name]}, indent=1))
            self.log(f"[{name}] done in {self.seconds[name]:.0f}s")
        self.results[name] = res
        return res

    # ------------------------------------------------------------------ steps
    def _train(self, model: str, out: str, epochs: int, teacher: str | None = None) -> dict:
        from .train import TrainConfig, train
        p = self.plan
        cfg = TrainConfig(model=model, out=str(self.out / out), epochs=epochs, batch_size=p.batch_size,
                          lr=p.lr, resolution=p.resolution, train_size=p.train_size, val_size=p.val_size,
                          workers=self.workers, warmup_epochs=min(0.5, epochs / 3), label_smoothing=0.1,
                          teacher=teacher, teacher_weights=str(self.out / "teacher" / "best.safetensors") if teacher else None,
                          distill="soft", alpha=0.5, temperature=2.0)
        r = train(cfg, log=lambda m: self.log("    " + m))
        return {"model": model, "best_top1": r["best_top1"], "weights": str(self.out / out / "best.safetensors"),
                "curves": str(self.out / out / "curves.png"), "epochs": epochs}

    def _evaluate(self) -> dict:
        from .train.loop import run_eval
        rows = {}
        for key, model in (("teacher", self.plan.teacher), ("student_kd", self.plan.student),
                           ("student_baseline", self.plan.student)):
            r = run_eval(model, str(self.out / key / "best.safetensors"), "embedded", self.plan.resolution,
                         val_size=self.plan.val_size, out_png=str(self.out / key / "confusion.png"),
                         workers=self.workers)
            rows[key] = {"model": model, "top1": round(r["top1"], 2), "top5": round(r["top5"], 2)}
        return rows

    def _student(self):
        from .weights import create_with_weights
        return create_with_weights(self.plan.student, self.out / "student_kd" / "best.safetensors")

    def _export(self) -> dict:
        from .deploy import reparameterize
        from .deploy.export import export
        from .factory import count_params
        m = self._student()
        fused = reparameterize(m)
        r = export(m, self.out / "student.onnx", resolution=(self.plan.resolution,) * 2, dynamic_batch=True)
        return {"onnx": str(r.path), "max_abs_diff": r.max_abs_diff, "params": count_params(m),
                "params_reparameterized": count_params(fused), "size_mb": round(r.size_bytes / 1e6, 2)}

    def _optimize(self) -> dict:
        """`edgevision optimize` on the distilled student; the step's result is optimize's
        results.json plus the paths it wrote and its one-line answer."""
        from .optimize import optimize
        from .optimize.report import headline
        p = self.plan
        r = optimize(p.student, weights=str(self.out / "student_kd" / "best.safetensors"), calib="embedded",
                     max_drop=0.01, runtimes=list(p.deploy_runtimes), batches=p.deploy_batches,
                     out=self.out / "deploy", resolution=p.deploy_resolution, images=p.calib_images,
                     held_out=p.held_out, budget_s=p.bench_budget_s, rounds=p.deploy_rounds)
        res = json.loads(Path(r.paths["json"]).read_text())
        return dict(res, headline=headline(r.info, r.winner), reference=r.winner.candidate.reference,
                    paths={k: str(v) for k, v in r.paths.items()})

    def _bench(self) -> dict:
        from .bench.runner import benchmark
        res = self.plan.resolution
        w = {self.plan.student: str(self.out / "student_kd" / "best.safetensors")}
        rs = benchmark([self.plan.student], ["torch", "ort", "ort-int8", "openvino", "openvino-int8"], 1, res,
                       use_cache=False, budget_s=self.plan.bench_budget_s, weights=w)
        # the published-accuracy view: the registry's small models, eager, for the Pareto plot
        pareto = benchmark(list(self.plan.pareto_models), ["ort"], 1, None, budget_s=self.plan.bench_budget_s)
        return {"student": [r.to_json() for r in rs], "pareto": [r.to_json() for r in pareto]}

    def _report(self) -> dict:
        from .bench.latency import cpu_description
        from .bench.report import demo_report, pareto_plot
        from .bench.runner import BenchResult
        pareto = [BenchResult.from_json(r) for r in self.results["bench"]["pareto"]]
        pareto_plot(pareto, self.out / "pareto.png",
                    "onnxruntime fp32 latency here (224-256 px) vs published ImageNet top-1")
        path = self.out / "report.md"
        with atomic_write(path, ".md") as tmp:
            tmp.write_text(demo_report(self.plan, self.results, self.seconds, cpu_description()))
        return {"report": str(path)}

    def run(self) -> dict:
        p = self.plan
        self.step("teacher", f"train teacher {p.teacher} ({p.teacher_epochs} epochs)",
                  lambda: self._train(p.teacher, "teacher", p.teacher_epochs))
        self.step("student_kd", f"distill student {p.student} from the teacher ({p.student_epochs} epochs)",
                  lambda: self._train(p.student, "student_kd", p.student_epochs, teacher=p.teacher))
        self.step("student_baseline", f"train student {p.student} without distillation (baseline)",
                  lambda: self._train(p.student, "student_baseline", p.student_epochs))
        self.step("evaluate", "evaluate teacher, distilled student and baseline", self._evaluate)
        self.step("export", "reparameterize + export the student to ONNX (parity checked)", self._export)
        self.step("optimize", f"optimize the student at {p.deploy_resolution} px: the fastest verified artifact "
                  f"({', '.join(p.deploy_runtimes)}, batch {', '.join(map(str, p.deploy_batches))})", self._optimize)
        self.step("bench", "benchmark eager / ONNX fp32 / INT8 on this machine", self._bench)
        self.step("report", "write report.md", self._report)
        return self.results


def deploy_line(o: dict) -> str:
    """The deploy step's answer in a few words: the verified pick and its speed-up over
    onnxruntime fp32, or plainly that nothing beat it."""
    where = f"deploy ({o['resolution'][0]} px"
    if o["reference"]:
        return f"{where}): nothing verified beats onnxruntime fp32 on this machine, deploying onnxruntime fp32"
    win = next(c for c in o["candidates"] if c["candidate"]["name"] == o["winner"])
    speed = ", ".join(f"{win['speedup'][str(b)]:.2f}x at bs{b}" for b in o["batches"])
    return (f"{where}, verified): {o['winner']} {speed} vs onnxruntime fp32, "
            f"{win['top1_agreement']:.1f}% agreement")


def summary(results: dict, out: Path) -> str:
    e, o = results["evaluate"], results["optimize"]
    return (f"teacher {e['teacher']['model']}: {e['teacher']['top1']:.1f}% | student "
            f"{e['student_kd']['model']} distilled {e['student_kd']['top1']:.1f}% vs baseline "
            f"{e['student_baseline']['top1']:.1f}% | {deploy_line(o)}\n"
            f"report: {out / 'report.md'}  plot: {out / 'pareto.png'}  artifact: {o['paths']['artifact']}")
