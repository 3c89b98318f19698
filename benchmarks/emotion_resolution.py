"""Scoring resolution trade-off of an emotion model: speed and test quality per input size.

Prints one row per input size: images per second (float32 and bfloat16 autocast, random
images, batch 32, on CPU unless --device says otherwise) with the ratio against the native
size measured in the same run, and — where the real data is present — the model's test-split
Emotion6 accuracy and VA MSE at that size (features cached under the usual cache folder).

    python benchmarks/emotion_resolution.py [--model default] [--sizes 256,224,160,128,96]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from evoemotion.emotion import load_model
from evoemotion.emotion.datasets import load_dataset
from evoemotion.emotion.evaluate import evaluate_rows, held_out_rows
from evoemotion.paths import data_root


def images_per_second(model, size: int, bf16: bool, batches: int, batch_size: int) -> float:
    """Throughput of preprocess + forward on random 256 px uint8 images."""
    rng = np.random.default_rng(0)
    device = model.feature_mean.device
    images = torch.from_numpy(rng.integers(0, 256, (batch_size, 256, 256, 3), dtype=np.uint8))
    images = images.to(device)
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        model(model.preprocess(images[:2], size))  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            model(model.preprocess(images, size))
        return batches * batch_size / (time.perf_counter() - start)


def side_list(text: str) -> list[int]:
    """Parse ``--sizes``: comma-separated input sides of at least 16 px."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 256,128") from None
    if min(sizes) < 16:
        raise argparse.ArgumentTypeError(f"input sides must be >= 16 px, got {text!r}")
    return sizes


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="checkpoint or 'default'")
    parser.add_argument(
        "--sizes",
        type=side_list,
        default=None,
        help="comma-separated input sides, the first is the ratios' baseline "
        "(default: the model's input size, then 224,160,128,96)",
    )
    parser.add_argument("--batches", type=int, default=3, help="timed batches per setting")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()
    model = load_model(args.model, device=args.device)
    sizes = args.sizes or [
        model.input_size,
        *(s for s in (224, 160, 128, 96) if s != model.input_size),
    ]
    emotion6 = None
    if (data_root() / "emotion6" / "ground_truth.txt").is_file():
        emotion6 = load_dataset("emotion6")
    else:
        print(f"no real data at {data_root()}: speed only")
    print(f"model {args.model} ({model.info.name}, native {model.input_size} px), {args.device}")
    print(
        f"{'size':>5} {'img/s f32':>10} {'ratio':>6} {'img/s bf16':>11} {'ratio':>6}"
        f" {'E6 acc':>7} {'E6 VA MSE':>10}"
    )
    base = None
    for size in sizes:
        f32 = images_per_second(model, size, False, args.batches, args.batch_size)
        bf16 = images_per_second(model, size, True, args.batches, args.batch_size)
        base = base or f32
        quality = ""
        if emotion6 is not None:
            metrics = evaluate_rows(model, emotion6, held_out_rows(model, emotion6), size=size)
            quality = f" {metrics['categorical']['accuracy']:7.3f} {metrics['va_mse']:10.3f}"
        print(f"{size:5d} {f32:10.1f} {f32 / base:6.2f} {bf16:11.1f} {bf16 / base:6.2f}{quality}")


if __name__ == "__main__":
    main()
