"""Helpers of ``check.sh`` for what the ``evoemotion`` commands do not print themselves.

    python benchmarks/gpu/steps.py runs LABEL=RUN_DIR [LABEL=RUN_DIR ...]
    python benchmarks/gpu/steps.py metrics LABEL=EVALUATE_JSON [LABEL=EVALUATE_JSON ...]
    python benchmarks/gpu/steps.py render-rate [--device cuda] [--sizes 64,224] [--count 1024]
    python benchmarks/gpu/steps.py subset-emotion6 DATA_ROOT N OUT_CSV

``runs`` prints one markdown row per run folder from its ``metrics.csv`` (last row):
evaluations, seconds spent stepping, evaluations per second, coverage, QD score. The
seconds are the run's own ``wall_time`` (stepping only: no start-up, no export).
``metrics`` tabulates the test metrics that ``evoemotion evaluate --json`` wrote, one row
per model and dataset. ``render-rate`` times the torch CPPN renderer (``render_torch``,
images left on the device) against the Numba kernels (``render``, uint8 on the host) on
the same genomes, best of ``--repeats``, and prints how far apart their uint8 images are.
``subset-emotion6`` writes N evenly spread Emotion6 rows as a CSV dataset (a dataset no
model was trained on, so ``evaluate`` scores all of it) for ``check.sh --cpu``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np


def run_rows(runs: list[tuple[str, Path]]) -> list[str]:
    """Markdown table of the last metrics row of each run folder."""
    lines = [
        "| run | evaluations | s stepping | evaluations/s | coverage | QD score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, folder in runs:
        with open(folder / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            lines.append(f"| {label} | 0 | - | - | - | - |")
            continue
        last = rows[-1]
        evaluations, seconds = int(last["evaluations"]), float(last["wall_time"])
        lines.append(
            f"| {label} | {evaluations:,} | {seconds:.1f} | {evaluations / seconds:,.0f} | "
            f"{float(last['coverage']):.3f} | {float(last['qd_score']):.2f} |"
        )
    return lines


def _cell(metrics: dict, *keys: str) -> str:
    for key in keys:
        if not isinstance(metrics, dict) or key not in metrics:
            return "-"
        metrics = metrics[key]
    return f"{metrics:.3f}"


def metric_rows(results: list[tuple[str, Path]]) -> list[str]:
    """Markdown table of ``evoemotion evaluate --json`` files: test metrics per dataset."""
    lines = [
        "| model | dataset | images | 7-class accuracy | 6-class accuracy | VA MSE | "
        "valence r | arousal r | dominance MSE |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, path in results:
        for dataset, m in json.loads(path.read_text()).items():
            lines.append(
                f"| {label} | {dataset} | {m['n']} | {_cell(m, 'categorical', 'accuracy')} | "
                f"{_cell(m, 'categorical', 'accuracy_without_neutral')} | {_cell(m, 'va_mse')} | "
                f"{_cell(m, 'valence', 'pearson_r')} | {_cell(m, 'arousal', 'pearson_r')} | "
                f"{_cell(m, 'dominance', 'mse')} |"
            )
    return lines


def _pairs(parser: argparse.ArgumentParser, items: list[str]) -> list[tuple[str, Path]]:
    pairs = [item.split("=", 1) for item in items]
    if any(len(p) != 2 for p in pairs):
        parser.error("each argument is LABEL=PATH")
    return [(label, Path(path)) for label, path in pairs]


def _best_seconds(work, repeats: int, sync) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def render_rows(device: str, sizes: list[int], count: int, repeats: int) -> list[str]:
    """Markdown table: torch renderer on ``device`` vs Numba, images per second."""
    import torch

    from evoemotion.genotypes import load_genotype
    from evoemotion.render import render
    from evoemotion.render.differentiable import render_torch, to_uint8

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    genotype = load_genotype("cppn")
    genomes = np.stack(genotype.random(np.random.default_rng(0), count))
    on_device = torch.as_tensor(genomes, dtype=torch.float32, device=device)
    lines = [
        f"| size | Numba img/s (cpu, {torch.get_num_threads()} threads) | torch img/s "
        f"({device}) | torch / Numba | max uint8 difference |",
        "|---|---:|---:|---:|---:|",
    ]
    for size in sizes:
        numba_images = render(genotype, genomes, size)  # also compiles the kernel once
        with torch.no_grad():
            torch_images = to_uint8(render_torch(genotype, on_device, size))
            numba_s = _best_seconds(lambda s=size: render(genotype, genomes, s), repeats, sync)
            torch_s = _best_seconds(
                lambda s=size: render_torch(genotype, on_device, s), repeats, sync
            )
        diff = np.abs(torch_images.astype(int) - numba_images.astype(int)).max()
        lines.append(
            f"| {size}² | {count / numba_s:,.0f} | {count / torch_s:,.0f} | "
            f"{numba_s / torch_s:.2f}x | {diff} |"
        )
    return lines


def subset_emotion6(root: Path, count: int, out: Path) -> int:
    """Write a CSV dataset of ``count`` evenly spread Emotion6 rows: absolute image path,
    argmax label, valence, arousal. As a ``csv:`` dataset it is one no model was trained on.

    Returns:
        The number of rows written.
    """
    from evoemotion.emotion.datasets import load_emotion6

    data = load_emotion6(root / "emotion6")
    rows = np.linspace(0, len(data) - 1, count).astype(int)
    lines = ["path,label,valence,arousal"]
    for i in rows:
        label = data.class_names[int(np.argmax(data.probs[i]))]
        lines.append(f"{data.path(i).resolve()},{label},{data.values['valence'][i]},"
                     f"{data.values['arousal'][i]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return len(rows)


def main() -> None:
    """Parse the command line and run one sub-command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("runs", help="table of run folders' final metrics")
    runs.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    metrics = sub.add_parser("metrics", help="table of evaluate --json files")
    metrics.add_argument("results", nargs="+", metavar="LABEL=EVALUATE_JSON")
    rate = sub.add_parser("render-rate", help="torch vs Numba CPPN rendering")
    rate.add_argument("--device", default="cuda", help="torch renderer's device")
    rate.add_argument("--sizes", default="64,224", help="comma-separated sides in px")
    rate.add_argument("--count", type=int, default=1024, help="genomes per timing")
    rate.add_argument("--repeats", type=int, default=3, help="timings per stage (best of)")
    subset = sub.add_parser("subset-emotion6", help="a small Emotion6 CSV dataset")
    subset.add_argument("root", type=Path)
    subset.add_argument("count", type=int)
    subset.add_argument("out", type=Path, help="CSV file to write")
    args = parser.parse_args()
    if args.command == "runs":
        print("\n".join(run_rows(_pairs(parser, args.runs))))
    elif args.command == "render-rate":
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
        print("\n".join(render_rows(args.device, sizes, args.count, args.repeats)))
    elif args.command == "metrics":
        print("\n".join(metric_rows(_pairs(parser, args.results))))
    else:
        print(f"{subset_emotion6(args.root, args.count, args.out)} Emotion6 rows in {args.out}")


if __name__ == "__main__":
    main()
