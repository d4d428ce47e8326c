"""Automatic labels: the world → pixel transform against a rendered frame, overlays, and VOC-style AP."""

from __future__ import annotations

import numpy as np
import pytest

from mlcasebook.drive.perception import (
    average_precision,
    box_iou,
    camera_of,
    draw_boxes,
    lane_marking_mask,
    make_highway,
    mean_average_precision,
    vehicle_boxes,
)

pytest.importorskip("highway_env")

ROAD_GREY = np.array([100, 100, 100])
EGO_GREEN = np.array([50, 200, 0])


@pytest.fixture(scope="module")
def scene():
    """A held-out seed, a few steps in (so the window has moved with the ego), one rendered frame."""
    env = make_highway()
    env.reset(seed=50_007)
    for _ in range(4):
        env.step(1)  # IDLE
    camera = camera_of(env)  # computed before the render, from config + ego position
    frame = env.render()
    yield env, camera, frame
    env.close()


def _drawn_blobs(frame: np.ndarray) -> np.ndarray:
    """Tight boxes of the connected non-road, non-white regions: the cars as the viewer drew them."""
    from scipy import ndimage

    painted = (np.abs(frame.astype(int) - ROAD_GREY).sum(-1) > 0) & ~(frame == 255).all(-1)
    labels, _ = ndimage.label(painted)
    return np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndimage.find_objects(labels)])


def test_camera_matches_the_viewer(scene):
    env, camera, frame = scene
    assert frame.shape == (camera.height, camera.width, 3)
    np.testing.assert_allclose(camera.origin, env.unwrapped.viewer.sim_surface.origin)
    assert camera.scaling == env.unwrapped.viewer.sim_surface.scaling


def test_ego_box_centre_has_the_ego_colour(scene):
    env, _, frame = scene
    boxes, index = vehicle_boxes(env)
    ego = list(env.unwrapped.road.vehicles).index(env.unwrapped.vehicle)
    x0, y0, x1, y1 = boxes[list(index).index(ego)]
    # the ego sits at 30 % of the width, mid-height of its lane; its body is 5 m x 2 m at 5.5 px/m
    assert (x1 - x0, y1 - y0) == pytest.approx((5 * 5.5, 2 * 5.5), abs=0.01)
    centre = frame[int((y0 + y1) / 2), int((x0 + x1) / 2)]
    np.testing.assert_array_equal(centre, EGO_GREEN)


def test_every_box_matches_a_drawn_vehicle(scene):
    env, _, frame = scene
    boxes, _ = vehicle_boxes(env)
    blobs = _drawn_blobs(frame)
    assert len(boxes) >= 3 and len(blobs) == len(boxes)
    best = box_iou(boxes, blobs).max(axis=1)
    assert best.min() > 0.95, best  # within half a pixel of the painted body


def test_lane_marking_mask_lies_on_the_white_lines(scene):
    env, _, frame = scene
    mask = lane_marking_mask(env)
    white_rows = np.flatnonzero((frame == 255).all(-1).sum(axis=1) > frame.shape[1] // 4)
    np.testing.assert_array_equal(np.flatnonzero(mask.any(axis=1)), white_rows)


def test_draw_boxes_outlines_without_touching_the_input(scene):
    _, _, frame = scene
    before = frame.copy()
    out = draw_boxes(frame, [(10, 10, 30, 20, 0.9)], color=(255, 0, 0))
    np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(out[10, 15], [255, 0, 0])
    np.testing.assert_array_equal(out[15, 20], frame[15, 20])  # inside is untouched


def test_average_precision_by_hand():
    # ranked detections TP, FP, TP over 3 ground truths: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3;
    # envelope: 1 on (0, 1/3], 2/3 on (1/3, 2/3], 0 beyond → AP = 1/3 + 2/9 = 5/9
    assert average_precision(np.array([1, 1, 2]) / 3, np.array([1, 1 / 2, 2 / 3])) == pytest.approx(5 / 9)


def test_mean_average_precision_by_hand():
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]]), np.array([[0, 0, 10, 10]])]
    preds = [np.array([[0, 0, 10, 10],     # 0.9: TP
                       [0, 0, 10, 9.9],    # 0.8: duplicate of a taken box → FP
                       [50, 50, 60, 60]]),  # 0.3: nowhere → FP
             np.array([[1, 0, 11, 10]])]   # 0.7: IoU 9/11 ≥ 0.5 → TP
    scores = [np.array([0.9, 0.8, 0.3]), np.array([0.7])]
    # ranking TP, FP, TP, FP: recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2 → AP 1/3 + (1/3)(2/3) = 5/9
    assert mean_average_precision(preds, scores, gt) == pytest.approx(5 / 9)
    # at IoU 0.85 the shifted box (IoU 0.818) no longer counts: only the first TP → AP = 1/3
    assert mean_average_precision(preds, scores, gt, iou=0.85) == pytest.approx(1 / 3)
    assert mean_average_precision(gt, [np.ones(2), np.ones(1)], gt) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mean_average_precision(preds, scores, gt[:1])


# ---- the detector -------------------------------------------------------------------------------


def test_one_training_step_lowers_the_loss(scene):
    torch = pytest.importorskip("torch")
    from mlcasebook.drive.detector import CenterNet, DetectorConfig, train_step

    env, _, frame = scene
    boxes, _ = vehicle_boxes(env)
    config = DetectorConfig(width=16)
    torch.manual_seed(0)
    module = CenterNet(config.width)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    frames, targets = np.stack([frame, frame[:, ::-1]]), [boxes, np.stack([600 - boxes[:, 2], boxes[:, 1],
                                                                           600 - boxes[:, 0], boxes[:, 3]], 1)]
    before, parts = train_step(module, optimizer, frames, targets, config)
    after, _ = train_step(module, optimizer, frames, targets, config)
    assert np.isfinite(before) and set(parts) == {"heat", "size", "offset"}
    assert after < before


def test_decode_turns_a_peak_into_its_box():
    torch = pytest.importorskip("torch")
    from mlcasebook.drive.detector import decode

    heat = torch.full((1, 1, 19, 75), -9.0)
    heat[0, 0, 9, 20] = 3.0  # one confident peak …
    heat[0, 0, 9, 21] = 2.0  # … and a weaker neighbour that max-pool NMS must drop
    size = torch.zeros(1, 2, 19, 75)
    size[0, :, 9, 20] = torch.tensor([27.5 / 8, 11 / 8])
    offset = torch.zeros(1, 2, 19, 75)
    offset[0, :, 9, 20] = torch.tensor([0.5, 0.25])
    (found,) = decode({"heat": heat, "size": size, "offset": offset}, cell_px=8.0, score_floor=0.05,
                      max_detections=10, frame_size=(150, 600))
    assert found.shape == (1, 5)
    centre = ((20 + 0.5) * 8, (9 + 0.25) * 8)
    np.testing.assert_allclose(found[0, :4], [centre[0] - 13.75, centre[1] - 5.5, centre[0] + 13.75, centre[1] + 5.5],
                               atol=1e-4)
    assert found[0, 4] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)


def test_detector_checkpoint_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from mlcasebook.core.errors import CasebookError
    from mlcasebook.drive.detector import DetectorConfig, load_detector, train_detector

    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    config = DetectorConfig(frames=8, frames_per_seed=4, epochs=1, batch_size=4, width=8)
    record = train_detector(tmp_path / "det.pt", config, progress=False)
    assert record == {"epochs_done": 1, "train_s": record["train_s"], "frames": 8}
    detector = load_detector(tmp_path / "det.pt")
    detections = detector.detect(np.full((150, 600, 3), 100, np.uint8))
    assert all(len(d) == 5 and 0 <= d[0] <= d[2] <= 600 and 0 <= d[1] <= d[3] <= 150 for d in detections)
    with pytest.raises(CasebookError, match="not a detector"):
        from mlcasebook.core.checkpoint import save_checkpoint

        save_checkpoint(tmp_path / "other.pt", {"w": np.zeros(2)}, {"kind": "something-else"})
        load_detector(tmp_path / "other.pt")
