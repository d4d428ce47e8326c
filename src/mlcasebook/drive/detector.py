"""A small one-stage vehicle detector (CenterNet, Zhou et al. 2019) trained on automatically labelled frames.

CenterNet predicts, on a grid ``stride`` times coarser than its input, a heat map that peaks at
every object's centre, plus the object's size and the centre's sub-cell offset at that peak.
Training: a penalty-reduced focal loss on the heat map (targets are Gaussians around each centre)
and L1 losses on size and offset at the centre cells. Inference: a 3x3 max-pool keeps the local
maxima of the heat map (no box-level NMS) and each peak above a score floor becomes a box.

Frames come from highway-fast episodes run with random meta-actions on training seeds (< 50,000),
labelled by ``perception.vehicle_boxes``; the figures use frames from held-out seeds 50,000–99,999.
Frames are downscaled by ``downscale`` before the network (the cars stay 14 x 5 px at 2x): that
is what makes training take minutes on one CPU thread.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CasebookError
from ..core.progress import bar, track
from ..core.sources import cache_dir
from . import envs
from .perception import labelled_frame, make_highway, mean_average_precision

TRAIN_SEEDS = (envs.TRAIN_SEEDS.start, envs.TRAIN_SEEDS.stop)
HELDOUT_SEEDS = (envs.DETECTOR_HELDOUT_SEEDS.start, envs.DETECTOR_HELDOUT_SEEDS.stop)
# meta-actions LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER: mostly cruising, with lane changes and
# crashes often enough that tilted and red (crashed) cars appear in the frames
_ACTION_PROBS = np.array([0.15, 0.5, 0.15, 0.1, 0.1])


@dataclass
class DetectorConfig:
    """Everything that determines a detector (stored in its checkpoint)."""

    downscale: int = 2  # frames are average-pooled by this factor before the network
    stride: int = 4  # output cells per network-input pixel
    width: int = 32  # channels of the trunk
    frames: int = 800  # training frames
    frames_per_seed: int = 10
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    score_floor: float = 0.05  # peaks below this are not reported (low, so AP sees the whole ranking)
    max_detections: int = 40
    size_weight: float = 0.1  # CenterNet's weight of the size loss
    history: list = field(default_factory=list)


# ---- data -------------------------------------------------------------------------------------


def render_frames(first_seed: int, count: int, frames_per_seed: int, progress: bool = True
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``count`` labelled frames from episodes with seeds first_seed, first_seed + 1, …

    One frame per policy step (1 s apart), up to ``frames_per_seed`` per episode; an episode that
    ends early (crash, time limit) just moves on to the next seed. Deterministic for given arguments."""
    env = make_highway()
    frames, boxes = [], []
    seed = first_seed
    with bar(count, f"rendering {count} frames (seeds from {first_seed})", disable=not progress) as advance:
        while len(frames) < count:
            rng = np.random.default_rng(seed)
            env.reset(seed=seed)
            for _ in range(frames_per_seed):
                frame, frame_boxes = labelled_frame(env)
                env.unwrapped.enable_auto_render = False  # no intermediate frames: we keep one per step
                frames.append(frame)
                boxes.append(frame_boxes.astype(np.float32))
                advance(1)
                _, _, terminated, truncated, _ = env.step(int(rng.choice(5, p=_ACTION_PROBS)))
                if terminated or truncated or len(frames) == count:
                    break
            seed += 1
    env.close()
    return np.stack(frames), boxes


def cached_frames(first_seed: int, count: int, frames_per_seed: int, progress: bool = True
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``render_frames``, kept in the cache (rendering is the slow part of a rerun or a resume)."""
    key = hashlib.sha256(json.dumps([first_seed, count, frames_per_seed, 1]).encode()).hexdigest()[:16]
    path = cache_dir() / "drive" / f"frames-{first_seed}-{count}-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            counts = data["counts"]
            flat = data["boxes"]
            return data["frames"], np.split(flat, np.cumsum(counts)[:-1])
    frames, boxes = render_frames(first_seed, count, frames_per_seed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, frames=frames, boxes=np.concatenate(boxes).reshape(-1, 4),
                        counts=np.array([len(b) for b in boxes]))
    tmp.replace(path)
    return frames, boxes


# ---- model ------------------------------------------------------------------------------------


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """Trunk at 1/4 resolution (dilated convolutions widen the view to a whole car) + three heads."""

    def __init__(self, width: int = 32):
        super().__init__()
        half = width // 2
        self.trunk = nn.Sequential(_conv(3, half, 2), _conv(half, half), _conv(half, width, 2),
                                   _conv(width, width), _conv(width, width, dilation=2),
                                   _conv(width, width, dilation=4))
        self.heads = nn.ModuleDict({name: nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                                        nn.Conv2d(width, channels, 1))
                                    for name, channels in (("heat", 1), ("size", 2), ("offset", 2))})
        # start the heat map near 0.01 everywhere, as CenterNet does, so the focal loss starts sane
        nn.init.constant_(self.heads["heat"][-1].bias, -4.6)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(images)
        return {name: head(features) for name, head in self.heads.items()}


def to_input(frames: np.ndarray, downscale: int, stride: int) -> torch.Tensor:
    """uint8 (n, H, W, 3) → float (n, 3, h, w), average-pooled, zero-padded to a multiple of ``stride``."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if downscale > 1:
        images = F.avg_pool2d(images, downscale, ceil_mode=True)
    pad_h, pad_w = -images.shape[2] % stride, -images.shape[3] % stride
    return F.pad(images, (0, pad_w, 0, pad_h)) - 0.4  # roughly centred: the road grey is 0.39


def make_targets(boxes: list[np.ndarray], grid: tuple[int, int], cell_px: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heat maps (n, 1, gh, gw), and per centre cell: size and offset targets with a mask.

    A car is about 3.4 x 1.4 cells at the defaults, so its Gaussian has per-axis sigmas (a sixth
    of the box, as TTFNet) rather than CenterNet's single radius: the heat map stays elongated."""
    gh, gw = grid
    heat = np.zeros((len(boxes), 1, gh, gw), np.float32)
    size = np.zeros((len(boxes), 2, gh, gw), np.float32)
    offset = np.zeros((len(boxes), 2, gh, gw), np.float32)
    mask = np.zeros((len(boxes), 1, gh, gw), np.float32)
    ys, xs = np.arange(gh)[:, None], np.arange(gw)[None, :]
    for i, frame_boxes in enumerate(boxes):
        for x0, y0, x1, y1 in np.asarray(frame_boxes).reshape(-1, 4) / cell_px:
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            cell_x, cell_y = min(int(cx), gw - 1), min(int(cy), gh - 1)
            sx, sy = max((x1 - x0) / 6, 0.3), max((y1 - y0) / 6, 0.3)
            gauss = np.exp(-((xs - cell_x) ** 2) / (2 * sx ** 2) - ((ys - cell_y) ** 2) / (2 * sy ** 2))
            heat[i, 0] = np.maximum(heat[i, 0], gauss)
            size[i, :, cell_y, cell_x] = (x1 - x0, y1 - y0)
            offset[i, :, cell_y, cell_x] = (cx - cell_x, cy - cell_y)
            mask[i, 0, cell_y, cell_x] = 1.0
    return tuple(torch.from_numpy(a) for a in (heat, size, offset, mask))


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, normalised by the number of objects."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos_loss = -torch.log(prob) * (1 - prob) ** alpha * positive
    neg_loss = -torch.log(1 - prob) * prob ** alpha * (1 - target) ** beta * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1.0)


def detection_loss(outputs: dict[str, torch.Tensor], targets, size_weight: float) -> tuple[torch.Tensor, dict]:
    heat, size, offset, mask = targets
    n_objects = mask.sum().clamp(min=1.0)
    heat_loss = focal_loss(outputs["heat"], heat)
    size_loss = (F.l1_loss(outputs["size"], size, reduction="none") * mask).sum() / n_objects
    offset_loss = (F.l1_loss(outputs["offset"], offset, reduction="none") * mask).sum() / n_objects
    total = heat_loss + size_weight * size_loss + offset_loss
    return total, {"heat": heat_loss.item(), "size": size_loss.item(), "offset": offset_loss.item()}


def decode(outputs: dict[str, torch.Tensor], cell_px: float, score_floor: float, max_detections: int,
           frame_size: tuple[int, int]) -> list[np.ndarray]:
    """Peaks of the heat map → per image an array (k, 5) of (x0, y0, x1, y1, score) in frame pixels."""
    heat = torch.sigmoid(outputs["heat"])
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # CenterNet's NMS
    n, _, gh, gw = heat.shape
    scores, flat = peaks.view(n, -1).topk(min(max_detections, gh * gw))
    height, width = frame_size
    results = []
    for i in range(n):
        keep = scores[i] >= score_floor
        cells, score = flat[i][keep], scores[i][keep]
        cy, cx = (cells // gw), (cells % gw)
        off = outputs["offset"][i, :, cy, cx]
        wh = outputs["size"][i, :, cy, cx].clamp(min=0)
        centre_x, centre_y = cx + off[0], cy + off[1]
        boxes = torch.stack([centre_x - wh[0] / 2, centre_y - wh[1] / 2, centre_x + wh[0] / 2,
                             centre_y + wh[1] / 2], dim=1) * cell_px
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        results.append(torch.cat([boxes, score[:, None]], dim=1).numpy())
    return results


class Detector:
    """A trained detector: ``detect(frame)`` → list of (x0, y0, x1, y1, score) in the frame's pixels."""

    def __init__(self, module: CenterNet, config: DetectorConfig):
        self.module = module.eval()
        self.config = config

    @property
    def cell_px(self) -> float:
        return float(self.config.downscale * self.config.stride)

    @torch.inference_mode()
    def detect_batch(self, frames: np.ndarray, batch_size: int = 32) -> list[np.ndarray]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise CasebookError(f"expected frames of shape (n, H, W, 3), got {frames.shape}",
                                hint="pass RGB frames as env.render() returns them")
        results = []
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            outputs = self.module(to_input(chunk, self.config.downscale, self.config.stride))
            results += decode(outputs, self.cell_px, self.config.score_floor, self.config.max_detections,
                              chunk.shape[1:3])
        return results

    def detect(self, frame: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        return [tuple(float(v) for v in row) for row in self.detect_batch(np.asarray(frame)[None])[0]]


# ---- training ---------------------------------------------------------------------------------


def _state_arrays(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    arrays = {f"module.{name}": tensor for name, tensor in module.state_dict().items()}
    for param_id, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            arrays[f"optimizer.{param_id}.{key}"] = torch.as_tensor(value)
    return arrays


def _restore(module: nn.Module, optimizer: torch.optim.Optimizer | None, arrays: dict) -> None:
    module.load_state_dict({name.removeprefix("module."): torch.from_numpy(np.array(value))
                            for name, value in arrays.items() if name.startswith("module.")})
    if optimizer is None:
        return
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in arrays.items():
        if name.startswith("optimizer."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = torch.from_numpy(np.array(value))
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})


def train_step(module: CenterNet, optimizer: torch.optim.Optimizer, frames: np.ndarray, boxes: list[np.ndarray],
               config: DetectorConfig) -> tuple[float, dict]:
    """One gradient step on a batch; returns the loss before the step and its parts."""
    module.train()
    images = to_input(frames, config.downscale, config.stride)
    grid = (images.shape[2] // config.stride, images.shape[3] // config.stride)
    targets = make_targets(boxes, grid, float(config.downscale * config.stride))
    loss, parts = detection_loss(module(images), targets, config.size_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), parts


def train_detector(out: Path, config: DetectorConfig | None = None, minutes: float | None = None,
                   resume: bool = True, progress: bool = True) -> dict:
    """Train on frames from training seeds; checkpoint after every epoch to ``<out>.resume``.

    Rerunning after an interruption continues from the last finished epoch. ``minutes`` stops
    early (after the epoch that crosses it) and still writes a usable model. Returns the record."""
    config = config or DetectorConfig()
    out = Path(out)
    state_file = out.with_name(out.name + ".resume")
    torch.manual_seed(config.seed)
    module = CenterNet(config.width)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=1e-4)
    start_epoch, elapsed = 0, 0.0
    if resume and state_file.is_file():
        arrays, meta = load_checkpoint(state_file)
        stored = {k: v for k, v in meta["config"].items() if k != "history"}
        if stored != {k: v for k, v in asdict(config).items() if k != "history"}:
            raise CasebookError(f"{state_file} belongs to a run with other settings",
                                hint="rerun with the same options, pass --no-resume, or delete the file")
        _restore(module, optimizer, arrays)
        config.history = meta["config"]["history"]
        start_epoch, elapsed = meta["epoch"], meta["elapsed_s"]
    if config.frames > (TRAIN_SEEDS[1] - TRAIN_SEEDS[0]):
        raise CasebookError(f"{config.frames} frames would reach the held-out seeds", hint="ask for fewer frames")
    frames, boxes = cached_frames(TRAIN_SEEDS[0], config.frames, config.frames_per_seed, progress)
    steps_per_epoch = len(frames) // config.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch,
                                                   pct_start=0.15)
    for _ in range(start_epoch * steps_per_epoch):
        schedule.step()  # the schedule is a pure function of the step: replay it on resume
    epoch = start_epoch
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        order = np.random.default_rng((config.seed, epoch)).permutation(len(frames))
        losses = []
        for step in track(range(steps_per_epoch), f"detector epoch {epoch + 1}/{config.epochs}",
                          disable=not progress):
            rows = order[step * config.batch_size:(step + 1) * config.batch_size]
            loss, _ = train_step(module, optimizer, frames[rows], [boxes[r] for r in rows], config)
            schedule.step()
            losses.append(loss)
        elapsed += time.perf_counter() - began
        config.history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "elapsed_s": round(elapsed, 1)})
        save_checkpoint(state_file, _state_arrays(module, optimizer),
                        {"config": asdict(config), "epoch": epoch + 1, "elapsed_s": elapsed})
        if minutes is not None and elapsed > minutes * 60:
            break
    record = {"epochs_done": len(config.history), "train_s": round(elapsed, 1), "frames": len(frames)}
    save_checkpoint(out, {f"module.{k}": v for k, v in module.state_dict().items()},
                    {"kind": "drive-centernet", "config": asdict(config), "record": record})
    state_file.unlink(missing_ok=True)
    return record


def load_detector(path: Path | str) -> Detector:
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != "drive-centernet":
        raise CasebookError(f"{path} is not a detector checkpoint",
                            hint="train one with `mlcasebook drive detect-train --out PATH`")
    config = DetectorConfig(**meta["config"])
    module = CenterNet(config.width)
    _restore(module, None, arrays)
    return Detector(module, config)


def evaluate_detector(detector: Detector, frames: int = 300, frames_per_seed: int = 5, progress: bool = True) -> dict:
    """mAP@0.5 (and @0.75) on frames from held-out seeds 50,000+, and the inference speed."""
    images, gt = cached_frames(HELDOUT_SEEDS[0], frames, frames_per_seed, progress)
    began = time.perf_counter()
    detections = detector.detect_batch(images)
    seconds = time.perf_counter() - began
    boxes, scores = [d[:, :4] for d in detections], [d[:, 4] for d in detections]
    return {"map50": mean_average_precision(boxes, scores, gt, iou=0.5),
            "map75": mean_average_precision(boxes, scores, gt, iou=0.75),
            "frames": len(images), "vehicles": int(sum(len(g) for g in gt)),
            "seeds": f"{HELDOUT_SEEDS[0]}+ ({frames_per_seed} frames per episode)",
            "inference_fps": round(len(images) / seconds, 1), "torch_threads": torch.get_num_threads()}
