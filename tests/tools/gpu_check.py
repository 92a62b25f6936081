"""GPU check for one backend (KERAS_BACKEND): parity and training on the GPU.

Skips (exit 0, with the reason, in the report too) when the backend sees no GPU.
Otherwise: the batches of every worker mode, through `ds[i]` and through
`fit`'s data path, must equal each other; the example two-head model must
train with its variables on the GPU and both heads must reach 0.9.

    KERAS_BACKEND=jax python tests/tools/gpu_check.py --report reports/gpu-jax.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def visible_gpu(backend: str) -> str | None:
    """Returns a description of the GPU the backend sees, or None."""
    try:
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return str(gpus[0]) if gpus else None
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else None
    except Exception as error:  # a broken install is reported, not a crash
        print(f"cannot query the {backend} GPU: {error!r}")
        return None


def variables_on_gpu(model: object, backend: str) -> bool:
    """Whether the model's variables live on the GPU."""
    value = model.weights[0].value  # type: ignore[attr-defined]
    if backend == "jax":
        return all(d.platform == "gpu" for d in value.devices())
    if backend == "torch":
        return bool(value.device.type == "cuda")
    return "GPU" in value.device.upper()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="reports/gpu.json")
    args = parser.parse_args()
    import keras

    backend = keras.backend.backend()
    report: dict = {"backend": backend}
    gpu = visible_gpu(backend)
    if gpu is None:
        report["skipped"] = f"no GPU visible to {backend}; nothing to check"
        print(f"SKIPPED: {report['skipped']}")
        Path(args.report).write_text(json.dumps(report, indent=1))
        return 0
    report["gpu"] = gpu
    started = time.perf_counter()
    from parity import MODES, run_backend

    from keras_roi_datagen.demo import make_demo_dataset

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    csv = make_demo_dataset(work / "data", n_images=24, seed=11)
    results = run_backend(backend, str(csv), work)
    reference = next(iter(results.values()))["digests"]
    mismatched = [name for name, r in results.items() if r["digests"] != reference]
    report["parity"] = {"configurations": len(results), "modes": list(MODES),
                        "mismatched": mismatched}

    import train_two_heads  # examples/ is put on the path below

    metrics = work / "train.json"
    status = train_two_heads.main(["--data", str(work / "train-data"), "--epochs", "10",
                                   "--min-accuracy", "0.9", "--report", str(metrics)])
    report["train"] = json.loads(metrics.read_text()) if metrics.exists() else None
    report["variables_on_gpu"] = variables_on_gpu(train_two_heads.LAST_MODEL, backend)
    report["seconds"] = round(time.perf_counter() - started, 1)
    ok = not mismatched and status == 0 and report["variables_on_gpu"]
    report["ok"] = ok
    Path(args.report).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "train"}, indent=1))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    sys.exit(main())
