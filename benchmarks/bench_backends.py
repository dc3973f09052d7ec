"""torch vs ONNX Runtime as the backend of whole HEAR calls, in one process, alternating.

    python benchmarks/bench_backends.py                       # mn04, mn10, mn40_ext; 1 and 2 threads
    python benchmarks/bench_backends.py --models mn04_e1_l --threads 2 --repeats 9
    python benchmarks/bench_backends.py --smoke --json /tmp/backends.json   # does it run?

For each model and thread count the same random-weight model runs timestamp embeddings of
20 s and scene embeddings of 16 clips of 10 s with backend="torch" and
backend="onnxruntime" (whole calls: frontend, windowing and batching in torch, backbone and
taps in the backend), calls alternating, medians compared; outputs must agree to 1e-5.
With ``--openvino`` (``pip install openvino``) the same graph also runs in OpenVINO, plugged in
the same way (a runtime defined here, not shipped). ``--ort-config KEY=VALUE,...`` sets ONNX
Runtime session config entries (e.g. ``session.intra_op.allow_spinning=1``) to compare with the
shipped ones. Each call is also timed backbone-only: the log-mels the torch call fed its
backbone, run through each backend's backbone and taps alone (what the frontend costs is the
difference).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import harness
import torch
from bench_speed import interleaved_medians, paired_calls, standard_calls

import hear_mn
from hear_mn.engines.ort import OnnxRuntime

MODELS = ("mn04_e1_l", "mn10_e1_l", "mn40_ext_e1_l")


class OpenVINORuntime:
    """Backbone + taps in OpenVINO on the CPU (``MobileNetEmbedder.runtime``), for comparison."""

    name = "openvino"

    def compile(self, model: object) -> Callable[[torch.Tensor], torch.Tensor]:
        import openvino

        from hear_mn.export import onnx_bytes

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "graph.onnx"
            path.write_bytes(onnx_bytes(model, frontend=False))
            core = openvino.Core()
            settings = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
            compiled = core.compile_model(core.read_model(path), "CPU", settings)

        def run(mels: torch.Tensor) -> torch.Tensor:
            result = compiled(mels.detach().cpu().contiguous().numpy())
            return torch.from_numpy(result[compiled.output(0)].copy())

        return run


def _models(name: str, openvino: bool, ort_config: dict[str, str]) -> dict[str, object]:
    torch.manual_seed(0)
    runtimes = {"torch": None, "onnxruntime": OnnxRuntime(session_config=ort_config)}
    if openvino:
        runtimes["openvino"] = OpenVINORuntime()
    models = {}
    for backend, runtime in runtimes.items():
        model = hear_mn.create_model(name, pretrained=False)
        if models:
            model.load_state_dict(models["torch"].state_dict())
        model.runtime = runtime
        models[backend] = model
    return models


def fed_mels(model: object, run: Callable[[object], object]) -> list[torch.Tensor]:
    """The log-mel batches that ``run(model)`` feeds ``model``'s backbone, in order."""
    fed = []
    original = model.embed_mels
    model.embed_mels = lambda mels, job: fed.append(mels) or original(mels, job)
    try:
        run(model)
    finally:
        del model.embed_mels
    return fed


def backbone_only(
    models: dict[str, object], repeats: int, seconds: float = 20, clips: int = 16
) -> list[dict]:
    """Per standard call: median seconds of each backend's backbone + taps alone on the
    log-mels that the torch call fed its backbone (same batches), alternating."""
    baseline = models["torch"]
    rows = []
    for call, run in standard_calls(baseline.sample_rate, seconds, clips).items():
        fed = fed_mels(baseline, run)
        runs = {
            label: (lambda model=model, fed=fed: [model.embed_mels(mels) for mels in fed])
            for label, model in models.items()
        }
        with torch.inference_mode():
            seconds = interleaved_medians(runs, repeats)
        rows.append({"call": f"{call}, backbone only", "seconds": seconds})
    return rows


def measure(
    name: str,
    threads: int,
    repeats: int,
    openvino: bool = False,
    ort_config: dict[str, str] | None = None,
    seconds: float = 20,
    clips: int = 16,
) -> list[dict]:
    """Rows of (call, seconds per backend, speed-ups over torch, max relative differences),
    for whole calls and backbone only."""
    torch.set_num_threads(threads)
    # graphs are compiled on first use, with ``threads``
    models = _models(name, openvino, ort_config or {})
    rows = []
    calls = paired_calls(models, repeats, seconds, clips)
    for row in calls + backbone_only(models, repeats, seconds, clips):
        differences = row.get("max_relative_difference", {})  # whole calls only
        worst = max(differences.values(), default=0.0)
        if worst > 1e-5:
            raise AssertionError(f"{name} {row['call']}: backends differ by {worst:.1e}")
        seconds = row["seconds"]
        result = {
            "model": name,
            "threads": threads,
            "call": row["call"],
            "torch_s": seconds["torch"],
            "onnxruntime_s": seconds["onnxruntime"],
            "speedup": seconds["torch"] / seconds["onnxruntime"],
        }
        if differences:
            result["max_relative_difference"] = differences["onnxruntime"]
        if openvino:
            result["openvino_s"] = seconds["openvino"]
            result["openvino_speedup"] = seconds["torch"] / seconds["openvino"]
            if differences:
                result["openvino_max_relative_difference"] = differences["openvino"]
        rows.append(result)
    return rows


def main() -> None:
    parser = harness.parser(__doc__, repeats=7, threads="1,2", several_threads=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--openvino", action="store_true", help="also OpenVINO (pip install openvino)"
    )
    parser.add_argument(
        "--ort-config",
        default="",
        help="ONNX Runtime session config entries KEY=VALUE,... (added to the shipped ones)",
    )
    args = harness.parse_args(parser)
    seconds, clips = (1, 2) if args.smoke else (20, 16)
    if args.smoke:
        args.models, args.threads = MODELS[0], args.threads[:1]
    ort_config = dict(item.split("=", 1) for item in args.ort_config.split(",") if item)
    header = f"{'model':15} {'thr':>3} {'call':38} {'torch s':>8} {'ORT s':>8} {'speedup':>8}"
    lines = [f"onnxruntime session config: {ort_config}"] if ort_config else []
    lines.append(header + (f" {'OpenVINO s':>10} {'speedup':>8}" if args.openvino else ""))
    rows = []
    for name in args.models.split(","):
        for threads in args.threads:
            for row in measure(
                name, threads, args.repeats, args.openvino, ort_config, seconds, clips
            ):
                rows.append(row)
                line = (
                    f"{row['model']:15} {row['threads']:>3} {row['call']:38} "
                    f"{row['torch_s']:8.4f} {row['onnxruntime_s']:8.4f} {row['speedup']:7.2f}x"
                )
                if args.openvino:
                    line += f" {row['openvino_s']:10.4f} {row['openvino_speedup']:7.2f}x"
                lines.append(line)
    import onnxruntime

    payload = {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_session_config": OnnxRuntime(session_config=ort_config).session_config,
        "rows": rows,
    }
    harness.report(args, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
