"""Perception labels for free: vehicle boxes from the simulator state, mapped to pixels as the viewer draws them.

highway-env draws its top-down frame with ``EnvViewer``: a ``WorldSurface`` whose ``origin`` is the
world point at the frame's top-left corner and whose ``scaling`` is pixels per metre, so a world
point (x, y) lands at pixel ``((x - origin_x) * scaling, (y - origin_y) * scaling)`` (``pos2pix``).
Each frame the viewer moves the origin so that the ego sits at ``centering_position`` (fractions of
the frame width / height). A vehicle is a ``LENGTH`` x ``WIDTH`` rectangle rotated by its heading
(headings under 2 degrees are drawn straight), drawn only when its centre is within 50 px of the
frame (``WorldSurface.is_visible``). Reproducing that gives pixel-exact boxes for every frame without
a human labeller — the automatic labelling Tesla's data engine approximates with its fleet.

Also here: ``draw_boxes`` for overlays and ``mean_average_precision`` (VOC-style AP at an IoU threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the viewer skips a vehicle whose centre is farther than this outside the frame (WorldSurface.is_visible)
_VISIBILITY_MARGIN_PX = 50
# the viewer draws headings below 2 degrees as 0 (VehicleGraphics.display): a lane keeper's tiny wobble
_STRAIGHT_HEADING_RAD = 2 * np.pi / 180


@dataclass(frozen=True)
class Camera:
    """The viewer's world → pixel transform for one frame."""

    origin: np.ndarray  # world (x, y) [m] at pixel (0, 0)
    scaling: float  # pixels per metre
    width: int
    height: int

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 2) [m] → pixel coordinates (..., 2) as floats (x right, y down)."""
        return (np.asarray(points, dtype=float) - self.origin) * self.scaling

    def anchor_pixels(self, points: np.ndarray) -> np.ndarray:
        """Where the viewer centres a car: ``pos2pix`` truncates the pixel position to an int, and the
        car's sprite (sizes rounded down to whole pixels by ``WorldSurface.pix``) puts the body's centre
        half a pixel up-left of that anchor (measured: a 27 x 11 px body spans [a - 14, a + 13))."""
        return np.trunc(self.to_pixels(points)) - 0.5


def camera_of(env) -> Camera:
    """The transform the viewer uses (or will use) for the env's current state.

    Computed from the config and the ego position exactly as ``EnvViewer.display`` moves its window,
    so labels need no rendering; ``tests/test_drive_perception.py`` checks it against the viewer's own
    ``sim_surface.origin`` after a render."""
    env = env.unwrapped
    config = env.config
    width, height = int(config["screen_width"]), int(config["screen_height"])
    scaling = float(config.get("scaling") or 5.5)
    centering = np.asarray(config.get("centering_position") or [0.5, 0.5], dtype=float)
    viewer = getattr(env, "viewer", None)
    observer = getattr(viewer, "observer_vehicle", None) if viewer is not None else None
    focus = (observer or env.vehicle).position
    origin = np.asarray(focus, dtype=float) - centering * np.array([width, height]) / scaling
    return Camera(origin=origin, scaling=scaling, width=width, height=height)


def vehicle_corners(positions: np.ndarray, headings: np.ndarray, lengths: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Corners (n, 4, 2) of rotated rectangles in world coordinates, headings drawn as the viewer does."""
    headings = np.where(np.abs(headings) > _STRAIGHT_HEADING_RAD, headings, 0.0)
    half = np.stack([lengths, widths], axis=1)[:, None, :] / 2 * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
    cos, sin = np.cos(headings)[:, None], np.sin(headings)[:, None]
    rotated = np.stack([half[..., 0] * cos - half[..., 1] * sin, half[..., 0] * sin + half[..., 1] * cos], axis=-1)
    return rotated + positions[:, None, :]


def vehicle_boxes(env, min_visible: float = 0.5, camera: Camera | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned pixel boxes (n, 4) as (x0, y0, x1, y1) of every vehicle drawn in the current frame.

    A vehicle counts when the viewer draws it and at least ``min_visible`` of its box lies inside the
    frame (a sliver at the edge is not a fair target). Returns the boxes, clipped to the frame, and
    the indices of those vehicles in ``env.road.vehicles``."""
    road = env.unwrapped.road
    camera = camera or camera_of(env)
    vehicles = list(road.vehicles)
    if not vehicles:
        return np.zeros((0, 4)), np.zeros(0, dtype=int)
    positions = np.array([v.position for v in vehicles], dtype=float)
    corners = vehicle_corners(positions, np.array([v.heading for v in vehicles], dtype=float),
                              np.array([v.LENGTH for v in vehicles], dtype=float),
                              np.array([v.WIDTH for v in vehicles], dtype=float))
    # the viewer blits each car centred on its truncated pixel position: offsets about that anchor
    centres = camera.anchor_pixels(positions)
    pixels = centres[:, None, :] + (corners - positions[:, None, :]) * camera.scaling
    boxes = np.concatenate([pixels.min(axis=1), pixels.max(axis=1)], axis=1)
    drawn = ((centres[:, 0] > -_VISIBILITY_MARGIN_PX) & (centres[:, 0] < camera.width + _VISIBILITY_MARGIN_PX)
             & (centres[:, 1] > -_VISIBILITY_MARGIN_PX) & (centres[:, 1] < camera.height + _VISIBILITY_MARGIN_PX))
    clipped = np.clip(boxes, 0, [camera.width, camera.height, camera.width, camera.height])
    visible = box_area(clipped) / np.maximum(box_area(boxes), 1e-9)
    keep = np.flatnonzero(drawn & (visible >= min_visible))
    return clipped[keep], keep


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (len(a), len(b)) of (x0, y0, x1, y1) boxes."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def lane_marking_mask(env, camera: Camera | None = None, thickness_m: float = 0.3) -> np.ndarray:
    """A (height, width) boolean mask of the lane lines, from the road geometry (a segmentation target).

    Straight highway lanes only: every lane's two borders, solid or striped as the lane says; the
    dashes are drawn over their full length (the target is the line, not the paint pattern)."""
    from highway_env.road.lane import LineType

    camera = camera or camera_of(env)
    mask = np.zeros((camera.height, camera.width), dtype=bool)
    rows = np.arange(camera.height)
    for _, _, lanes in _iter_lanes(env.unwrapped.road.network):
        for lane in lanes:
            for side, line_type in zip((-1, 1), lane.line_types, strict=False):
                if line_type == LineType.NONE:
                    continue
                lateral = side * lane.width_at(0) / 2
                ends = np.array([lane.position(0, lateral), lane.position(lane.length, lateral)])
                if abs(ends[1, 1] - ends[0, 1]) > 1e-6:
                    raise ValueError("lane_marking_mask handles straight, axis-aligned lanes only")
                y = camera.to_pixels(ends)[0, 1]
                half = max(thickness_m * camera.scaling / 2, 0.5)
                mask[(rows >= y - half) & (rows < y + half)] = True
    return mask


def _iter_lanes(network):
    for start, ends in network.graph.items():
        for end, lanes in ends.items():
            yield start, end, lanes


def draw_boxes(frame: np.ndarray, boxes, labels: list[str] | None = None, color=(255, 40, 40),
               width: int = 1) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8) with the boxes (x0, y0, x1, y1[, score]) outlined and labelled."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = (float(v) for v in box[:4])
        draw.rectangle([x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)], outline=tuple(color), width=width)
        text = labels[i] if labels is not None else (f"{box[4]:.2f}" if len(box) > 4 else None)
        if text:
            draw.text((x0, max(y0 - 10, 0)), text, fill=tuple(color))
    return np.asarray(image)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ AP: area under the precision envelope (precision made monotone), every recall point."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_average_precision(pred_boxes, pred_scores, gt_boxes, iou: float = 0.5) -> float:
    """VOC-style AP of one class over many images (the detector has one class, so this is the mAP).

    ``pred_boxes[i]`` (k_i, 4), ``pred_scores[i]`` (k_i,) and ``gt_boxes[i]`` (m_i, 4) belong to image i.
    Detections are ranked by score over all images; each one is a true positive when its best-IoU
    ground-truth box in its image reaches ``iou`` and was not already taken by a higher-scored one."""
    if not (len(pred_boxes) == len(pred_scores) == len(gt_boxes)):
        raise ValueError("pred_boxes, pred_scores and gt_boxes need one entry per image")
    total_gt = sum(len(np.asarray(g).reshape(-1, 4)) for g in gt_boxes)
    if total_gt == 0:
        raise ValueError("no ground-truth boxes: AP is undefined")
    records = []  # (score, image, box)
    for image, (boxes, scores) in enumerate(zip(pred_boxes, pred_scores, strict=True)):
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        for box, score in zip(boxes, np.asarray(scores, dtype=float).reshape(-1), strict=True):
            records.append((score, image, box))
    records.sort(key=lambda r: -r[0])
    taken = [np.zeros(len(np.asarray(g).reshape(-1, 4)), dtype=bool) for g in gt_boxes]
    hits = np.zeros(len(records))
    for rank, (_, image, box) in enumerate(records):
        gts = np.asarray(gt_boxes[image], dtype=float).reshape(-1, 4)
        if len(gts) == 0:
            continue
        overlaps = box_iou(box[None], gts)[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou and not taken[image][best]:
            taken[image][best] = True
            hits[rank] = 1
    true_positives = np.cumsum(hits)
    recall = true_positives / total_gt
    precision = true_positives / np.arange(1, len(records) + 1)
    return average_precision(recall, precision) if records else 0.0


def make_highway(**config):
    """highway-fast (kinematics observations, discrete meta-actions, top-down RGB renders) as the case
    builds every env (``drive.envs.make_env``); ``config`` overrides highway-env's keys."""
    from .envs import make_env

    env = make_env("highway-fast")
    if config:
        env.unwrapped.configure(config)
    return env


def labelled_frame(env) -> tuple[np.ndarray, np.ndarray]:
    """Render the current state; return the frame and its vehicle boxes."""
    frame = env.render()
    boxes, _ = vehicle_boxes(env)
    return frame, boxes
