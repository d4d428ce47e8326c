"""Vehicle detector on highway-env frames: mAP@0.5 on held-out seeds, training time, inference speed.

Trains the CenterNet-style detector of ``mlcasebook.drive.detector`` on automatically labelled
frames from training seeds (0+, random meta-actions, one frame per policy step) and measures it on
frames from held-out seeds 50,000+ (``DetectorConfig`` defaults; nothing is tuned on those frames).
Each downscale factor is one row: the network sees the frame average-pooled by that factor.

    OMP_NUM_THREADS=1 flock /tmp/mlcasebook-drive.lock .venv/bin/python benchmarks/drive_detector.py
    .venv/bin/python benchmarks/drive_detector.py --frames 200 --epochs 2 --downscales 4 --out /tmp/d.json  # smoke
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from common import print_table, save
from mlcasebook.drive.detector import DetectorConfig, evaluate_detector, load_detector, train_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--downscales", type=int, nargs="+", default=[2, 4], help="first one is the main model")
    parser.add_argument("--frames", type=int, default=DetectorConfig.frames)
    parser.add_argument("--epochs", type=int, default=DetectorConfig.epochs)
    parser.add_argument("--eval-frames", type=int, default=400)
    parser.add_argument("--models-dir", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--note", default="1 torch thread on a shared 2-core CPU box (other jobs running)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/drive_detector.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    models_dir = args.models_dir or Path(tempfile.mkdtemp(prefix="drive-detector-"))
    rows = []
    for downscale in args.downscales:
        config = DetectorConfig(downscale=downscale, frames=args.frames, epochs=args.epochs)
        path = models_dir / f"centernet-x{downscale}.pt"
        began = time.perf_counter()
        record = train_detector(path, config, resume=True)
        wall = time.perf_counter() - began
        figures = evaluate_detector(load_detector(path), frames=args.eval_frames)
        rows.append({"model": f"CenterNet, frames / {downscale}", "downscale": downscale,
                     "input_px": f"{600 // downscale}x{150 // downscale}", "map50": round(figures["map50"], 4),
                     "map75": round(figures["map75"], 4), "train_frames": record["frames"],
                     "epochs": record["epochs_done"], "train_s": record["train_s"],
                     "wall_s_incl_rendering": round(wall, 1), "inference_fps": figures["inference_fps"],
                     "eval_frames": figures["frames"], "eval_vehicles": figures["vehicles"],
                     "target_map50": 0.9, "meets_target": figures["map50"] >= 0.9})
        table = pd.DataFrame(rows)
        print_table(table, "drive detector: mAP on held-out seeds")
        save(args.out, {"command": "OMP_NUM_THREADS=1 flock /tmp/mlcasebook-drive.lock .venv/bin/python "
                                   "benchmarks/drive_detector.py", "env": "highway-fast-v0, 600x150 top-down frames",
                        "train_seeds": "0+ (10 frames per episode, random meta-actions)",
                        "eval_seeds": figures["seeds"], "labels": "automatic, from simulator state "
                        "(perception.vehicle_boxes; vehicles >= 50 % inside the frame)",
                        "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                        "note": args.note}, {"detector": table})


if __name__ == "__main__":
    main()
