"""PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving Cars"), sized for our frames.

The original: a fixed normalisation layer, five convolutions (24, 36, 48 channels 5x5 stride 2;
64, 64 channels 3x3) and three fully connected layers (100, 50, 10) to one output, the inverse
turning radius, from a 66x200 YUV camera frame. Here:
- the input is CarRacing's 96x96 RGB frame (or a highway-env render resized to ``input_size``);
  normalisation (x / 127.5 − 1) sits inside the model, as in the paper, so checkpoints take raw
  uint8 frames;
- CarRacing's bottom 12 rows are its dashboard. The speed bar stays (speed from pixels is what the
  gas/brake decision needs, as a driver reads the speedometer); the steering and gyro bars (and the score) are
  blanked, because they show the *previous* action: a cloner that reads them copies its own last
  steering (the "causal confusion" of de Haan et al. 2019) instead of looking at the road;
- two outputs instead of one: steering in [−1, 1] (CarRacing's action[0], the analogue of the
  paper's inverse radius) and a longitudinal command in [−1, 1] (positive = gas, negative = brake;
  the expert never presses both, so one signed value loses nothing). The paper left speed to the
  car; CarRacing has no cruise control, so the network must drive the pedals too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CARRACING_INPUT = (96, 96)
DASHBOARD_ROWS = 12  # CarRacing's indicator strip at the bottom of the 96x96 frame
# the speed bar's columns stay visible; the rest of the strip (score digits, wheel-speed, steering and
# gyro bars) is blanked
SPEED_BAR_COLUMNS = slice(12, 15)
BRAKE_SCALE = 0.8  # brake ≥ 0.9 locks CarRacing's wheels; the expert never brakes harder than 0.8


class PilotNet(nn.Module):
    """5 conv + 3 FC layers from a raw uint8 frame (N, H, W, 3) to (steer, longitudinal) in [−1, 1]."""

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
            keep = x[:, :, -DASHBOARD_ROWS:, SPEED_BAR_COLUMNS].clone()
            x = x.clone()
            x[:, :, -DASHBOARD_ROWS:, :] = -1.0  # black, the strip's background
            x[:, :, -DASHBOARD_ROWS:, SPEED_BAR_COLUMNS] = keep
        return x

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalise(frames)))


def to_env_action(output: np.ndarray) -> np.ndarray:
    """(steer, longitudinal) → CarRacing's (steer, gas, brake)."""
    output = np.asarray(output, dtype=np.float32).reshape(-1, 2)
    steer, longitudinal = output[:, 0], output[:, 1]
    action = np.stack([steer, np.clip(longitudinal, 0, 1), np.clip(-longitudinal, 0, 1) * BRAKE_SCALE], axis=1)
    return action.squeeze(0) if action.shape[0] == 1 else action


def from_env_action(actions: np.ndarray) -> np.ndarray:
    """CarRacing's (steer, gas, brake) → the network's (steer, longitudinal) targets."""
    actions = np.asarray(actions, dtype=np.float32).reshape(-1, 3)
    return np.stack([actions[:, 0], actions[:, 1] - actions[:, 2] / BRAKE_SCALE], axis=1).clip(-1, 1)


class PilotNetAgent:
    """A trained PilotNet driving from the camera frame alone."""

    def __init__(self, model: PilotNet):
        self.model = model.eval()

    def reset(self) -> None:
        pass

    def act(self, env, obs) -> np.ndarray:
        from .envs import camera_frame

        frame = np.ascontiguousarray(camera_frame(env, obs))
        with torch.inference_mode():
            output = self.model(torch.from_numpy(frame)[None]).numpy()
        return to_env_action(output)


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
