"""--device, mixed precision and the distributed backend: each choice is a pure function of what
torch reports, tested here for GPU machines too (this suite runs without a GPU); the CPU path runs
end to end, and asking for a GPU that is not there is one clear line."""
import pytest
import torch

from edgevision.cli import main
from edgevision.errors import ConfigError
from edgevision.train.device import autocast_dtype, ddp_backend, needs_grad_scaler, resolve_device

CPU, GPU0, GPU1 = torch.device("cpu"), torch.device("cuda", 0), torch.device("cuda", 1)


@pytest.mark.parametrize("spec, local_rank, count, expected", [
    ("auto", 0, 0, CPU), ("auto", 0, 2, GPU0), ("auto", 1, 2, GPU1), ("cpu", 0, 2, CPU),
    ("cuda", 0, 1, GPU0), ("cuda", 1, 2, GPU1), ("cuda:1", 0, 2, GPU1), ("CUDA:0", 3, 4, GPU0),
])
def test_resolve_device(spec, local_rank, count, expected):
    assert resolve_device(spec, local_rank, cuda_count=count) == expected


@pytest.mark.parametrize("spec, count, needle", [
    ("cuda", 0, "torch sees no CUDA device"), ("cuda:2", 2, "cuda:0 to cuda:1"), ("gpu", 1, "unknown --device"),
])
def test_resolve_device_refuses(spec, count, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve_device(spec, cuda_count=count)


@pytest.mark.parametrize("device, amp, bf16, supported, dtype, scaler", [
    (CPU, False, False, None, None, False),
    (CPU, True, False, None, torch.bfloat16, False),
    (CPU, False, True, None, torch.bfloat16, False),
    (GPU0, True, False, True, torch.bfloat16, False),   # Ampere and later
    (GPU0, True, False, False, torch.float16, True),    # older GPUs: fp16 needs loss scaling
    (GPU0, False, True, False, torch.bfloat16, False),  # asked for explicitly
    (GPU0, False, False, True, None, False),
])
def test_mixed_precision_choice(device, amp, bf16, supported, dtype, scaler):
    assert autocast_dtype(device, amp, bf16, bf16_supported=supported) == dtype
    assert needs_grad_scaler(device, dtype) is scaler


def test_ddp_backend_follows_the_model():
    assert ddp_backend(CPU) == "gloo" and ddp_backend(GPU0) == "nccl"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("argv", [
    ["train", "-m", "mobilenetv3_small_075", "-o", "run", "--device", "cuda"],
    ["eval", "-m", "mobilenetv3_small_075", "--weights", "w.safetensors", "--device", "cuda"],
    ["bench", "mobilenetv3_small_075", "--device", "cuda:0"],
])
def test_missing_gpu_is_one_line(tmp_path, monkeypatch, capsys, argv):
    import edgevision as ev
    monkeypatch.chdir(tmp_path)
    ev.save_weights(ev.create_model("mobilenetv3_small_075", num_classes=12), tmp_path / "w.safetensors")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch sees no CUDA device" in err[0] and "--device cpu" in err[0]
    assert not (tmp_path / "run").exists()


def test_train_on_cpu_with_amp(tmp_path, capsys):
    """--device cpu --amp trains in bf16 autocast and says so; the weights are saved as usual."""
    out = tmp_path / "run"
    assert main(["train", "-m", "mobilenetv3_small_075", "-o", str(out), "--epochs", "1", "-b", "16",
                 "--train-size", "32", "--val-size", "16", "--resolution", "32", "-j", "0",
                 "--device", "cpu", "--amp"]) == 0
    text = capsys.readouterr().out
    assert "training mobilenetv3_small_075 on cpu, bf16 autocast" in text
    assert (out / "best.safetensors").is_file()


def test_bench_torch_backend_on_cpu_device(tmp_path, monkeypatch):
    from edgevision.bench.runner import benchmark
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path))
    (r,) = benchmark(["mobilenetv3_small_075"], ["torch"], resolution=(32, 48), budget_s=0.05,
                     progress=False, device="cpu")
    assert r.resolution == (32, 48) and r.settings.startswith("eager")
