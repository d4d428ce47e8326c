"""PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving Cars"), sized for our frames.

The original: a fixed normalisation layer, five convolutions (24, 36, 48 channels 5x5 stride 2;
64, 64 channels 3x3) and three fully connected layers (100, 50, 10) to one output, the inverse
turning radius, from a 66x200 YUV camera frame. Here:
- the input is CarRacing's 96x96 RGB frame (or a highway-env render resized to ``input_size``);
  normalisation (x / 127.5 − 1) sits inside the model, as in the paper, so checkpoints take raw
  uint8 frames;
- CarRacing's bottom 12 rows are its dashboard; they are blanked. The steering and gyro bars show
  the *previous* action, and a cloner that reads them copies its own last command (the "causal
  confusion" of de Haan et al. 2019) instead of looking at the road; the speed bar would invite the
  same shortcut for the pedals;
- two outputs instead of one: steering in [−1, 1] (CarRacing's action[0], the analogue of the
  paper's inverse turning radius) and a *target speed* (÷ ``SPEED_SCALE``). The paper left speed
  to the car; CarRacing has no cruise control, so a proportional controller on the speedometer
  (``experts.speed_control``, the expert's own) turns the target into gas or brake. A first
  version predicted gas/brake directly from the frame: the expert's pedal work is bang-bang and
  depends on the current speed, which a single frame barely shows, and the clone learned to brake
  to a standstill before bends and stay there (training-seed laps scored ~150).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CARRACING_INPUT = (96, 96)
DASHBOARD_ROWS = 12  # CarRacing's indicator strip at the bottom of the 96x96 frame
SPEED_SCALE = 120.0  # target speeds (simulator units/s; the expert's top speed is 110) are divided by this


class PilotNet(nn.Module):
    """5 conv + 3 FC layers from a raw uint8 frame (N, H, W, 3) to (steer, target speed / SPEED_SCALE)."""

    def __init__(self, input_size: tuple[int, int] = CARRACING_INPUT, mask_dashboard: bool = True):
        super().__init__()
        self.input_size = tuple(int(v) for v in input_size)
        self.mask_dashboard = mask_dashboard
        self.features = nn.Sequential(
            nn.Conv2d(3, 24, 5, stride=2), nn.ELU(),
            nn.Conv2d(24, 36, 5, stride=2), nn.ELU(),
            nn.Conv2d(36, 48, 5, stride=2), nn.ELU(),
            nn.Conv2d(48, 64, 3), nn.ELU(),
            nn.Conv2d(64, 64, 3), nn.ELU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, *self.input_size)).shape[1]
        self.head = nn.Sequential(
            nn.Dropout(0.2), nn.Linear(flat, 100), nn.ELU(), nn.Linear(100, 50), nn.ELU(), nn.Linear(50, 10),
            nn.ELU(), nn.Linear(10, 2), nn.Tanh(),
        )

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) → float (N, 3, H, W) in [−1, 1], resized and dashboard-masked."""
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if tuple(x.shape[-2:]) != self.input_size:
            x = nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        if self.mask_dashboard:
            x = x.clone()
            x[:, :, -DASHBOARD_ROWS:, :] = -1.0  # black, the strip's background
        return x

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalise(frames)))


def labels_from_expert(steer: np.ndarray, target_speed: np.ndarray) -> np.ndarray:
    """The network's targets (n, 2) from the expert's steering and target speed."""
    return np.stack([np.clip(steer, -1, 1), np.clip(np.asarray(target_speed) / SPEED_SCALE, -1, 1)],
                    axis=1).astype(np.float32)


def to_env_action(output: np.ndarray, speed: float) -> np.ndarray:
    """(steer, target speed / SPEED_SCALE) + the speedometer → CarRacing's (steer, gas, brake)."""
    from .experts import speed_control

    steer, target = np.asarray(output, dtype=np.float32).reshape(2)
    return np.array([steer, *speed_control(float(target) * SPEED_SCALE, speed)], dtype=np.float32)


class PilotNetAgent:
    """A trained PilotNet: steering and target speed from the camera frame; the speedometer closes the
    speed loop."""

    def __init__(self, model: PilotNet):
        self.model = model.eval()

    def reset(self) -> None:
        pass

    def act(self, env, obs) -> np.ndarray:
        from .envs import camera_frame
        from .experts import car_speed

        frame = np.ascontiguousarray(camera_frame(env, obs))
        with torch.inference_mode():
            output = self.model(torch.from_numpy(frame)[None]).numpy()
        return to_env_action(output, car_speed(env))


def save_pilotnet(path, model: PilotNet, meta: dict) -> None:
    from ..core.checkpoint import save_checkpoint

    save_checkpoint(path, model.state_dict(), {"kind": "pilotnet", "input_size": list(model.input_size),
                                               "mask_dashboard": model.mask_dashboard, **meta})


def load_pilotnet(path) -> tuple[PilotNet, dict]:
    """A PilotNet and its metadata from a checkpoint written by ``save_pilotnet`` / ``train_bc``."""
    from ..core.checkpoint import load_checkpoint
    from ..core.errors import CasebookError

    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != "pilotnet":
        raise CasebookError(f"{path} is not a PilotNet checkpoint (kind {meta.get('kind')!r})",
                            hint="train one with `mlcasebook drive train --env carracing --out PATH`")
    model = PilotNet(tuple(meta["input_size"]), meta.get("mask_dashboard", True))
    model.load_state_dict({name: torch.from_numpy(value) for name, value in arrays.items()})
    return model.eval(), meta
