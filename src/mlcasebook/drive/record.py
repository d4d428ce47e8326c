"""Render an episode to a GIF or MP4 with the agent's controls (and detections) drawn on each frame.

CarRacing frames are the env's 600x400 view; highway-env frames its top-down render. Below each
frame a strip shows the steering command as a bar from the centre (left / right) and, for
CarRacing, gas and brake; for highway-env's meta-actions, the action's name. With a detector, its
boxes are drawn on highway-env frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import CasebookError
from .episodes import Agent, run_episode

SUFFIXES = (".gif", ".mp4")
STRIP_PX = 28


def check_record_path(path: Path | str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise CasebookError(f"cannot record to {path.name!r}: unknown video format",
                            hint="end the file name in .gif or .mp4")
    return path


def steering_of(env, action) -> tuple[float, str]:
    """(steering in [−1, 1], a caption) for the action just taken."""
    action = np.asarray(action)
    if action.ndim == 1 and action.size == 3:  # CarRacing: steer, gas, brake
        return float(action[0]), f"steer {action[0]:+.2f}  gas {action[1]:.2f}  brake {action[2]:.2f}"
    unwrapped = env.unwrapped
    vehicle = getattr(unwrapped, "vehicle", None)
    steering = 0.0
    if vehicle is not None and isinstance(getattr(vehicle, "action", None), dict):
        # the low-level steering angle the controller applied, as a fraction of the ±45° range
        steering = float(np.clip(vehicle.action.get("steering", 0.0) / (np.pi / 4), -1, 1))
    actions = getattr(getattr(unwrapped, "action_type", None), "actions", None)
    if actions is not None and action.size == 1:
        caption = actions.get(int(action), str(action))
    else:
        caption = "steer " + " ".join(f"{v:+.2f}" for v in action.ravel())
    speed = getattr(vehicle, "speed", None)
    return steering, caption + (f"  {speed:.1f} m/s" if speed is not None else "")


def annotate(frame: np.ndarray, steering: float, caption: str) -> np.ndarray:
    """The frame with a strip below it: a steering bar from the centre and the caption."""
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    canvas = Image.new("RGB", (width, height + STRIP_PX), (20, 20, 20))
    canvas.paste(Image.fromarray(np.ascontiguousarray(frame)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    centre, half = width // 2, width // 4
    top, bottom = height + 4, height + 12
    draw.rectangle([centre - half, top, centre + half, bottom], outline=(120, 120, 120))
    end = centre + int(np.clip(steering, -1, 1) * half)
    draw.rectangle([min(centre, end), top + 1, max(centre, end), bottom - 1], fill=(255, 200, 0))
    draw.line([centre, top - 2, centre, bottom + 2], fill=(255, 255, 255))
    draw.text((4, height + 14), caption, fill=(230, 230, 230))
    return np.asarray(canvas)


def record_episode(env_name: str, agent: Agent, seed: int, path: Path | str, max_steps: int | None = None,
                   detector=None, fps: int | None = None, every: int = 1) -> dict:
    """Drive one episode, write it to ``path`` (.gif or .mp4); returns the episode's figures.

    ``every``: keep every n-th frame (GIFs of a 1000-step lap get large)."""
    import imageio.v2 as imageio

    path = check_record_path(path)
    frames: list[np.ndarray] = []
    state = {"step": 0}

    def on_frame(env, obs, action, info):
        state["step"] += 1
        if (state["step"] - 1) % every:
            return
        frame = env.render()
        if detector is not None:
            from .perception import draw_boxes

            frame = draw_boxes(frame, detector.detect(frame))
        frames.append(annotate(frame, *steering_of(env, action)))

    result = run_episode(env_name, agent, seed, max_steps, on_frame=on_frame)
    if not frames:
        raise CasebookError("the episode produced no frames", hint="use more --steps")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = fps or max(1, (50 if env_name == "carracing" else 15) // every)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix.lower() == ".gif":
        imageio.mimsave(tmp, frames, duration=1000 / rate, loop=0)
    else:
        # 16-pixel multiples keep every codec happy; pad rather than rescale
        height, width = frames[0].shape[:2]
        pad = ((0, -height % 16), (0, -width % 16), (0, 0))
        with imageio.get_writer(tmp, fps=rate, codec="libx264", macro_block_size=16) as writer:
            for frame in frames:
                writer.append_data(np.pad(frame, pad))
    tmp.replace(path)
    return result | {"frames": len(frames), "path": str(path)}
