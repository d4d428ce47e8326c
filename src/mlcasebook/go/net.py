"""The policy-value network (AlphaGo Zero's residual tower, with KataGo's cheap extras).

- Input planes, from the side to move's point of view: own stones and opponent stones for the
  current and ``history - 1`` earlier positions (ko and recent fights), a plane that says whether
  Black is to move (komi makes the colours unequal), the legal moves, and a plane of ones (lets
  zero-padded convolutions see the board edge); optionally (default on) KataGo's liberty
  features: own / opponent stones whose chain has 1, 2 or 3+ liberties — cheap to compute and
  hard for a small network to count by itself.
- Tower: 3x3 convolutions in residual blocks; every third block carries KataGo's *global pooling*
  bias (mean and max over the board feed back as per-channel biases), which lets the net reason
  about whole-board facts (who is ahead, ko threats) without a deep stack.
- Heads: policy over the board + pass (the pass logit comes from pooled features), value
  (tanh, side to move wins), and KataGo's auxiliary targets: final ownership of every point and
  the final score margin. The auxiliary targets are where most of KataGo's sample efficiency
  comes from (they give ~N² training signals per position instead of one).

The network is fully convolutional plus pooling, so one set of weights runs on any board size.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CasebookError
from .board import BLACK, EMPTY, GoState

FORMAT = "mlcasebook-go-net/1"
# The best 9x9 network so far ships in the package; models/go9.json says how it was trained.
SHIPPED_NET = Path(__file__).with_name("models") / "go9.ckpt"


@dataclass(frozen=True)
class NetConfig:
    channels: int = 64
    blocks: int = 6
    history: int = 4
    head_channels: int = 32
    liberties: bool = True

    @property
    def input_planes(self) -> int:
        return 2 * self.history + 3 + (6 if self.liberties else 0)


class GlobalPool(nn.Module):
    """Mean and max over the board: [B, C, N, N] -> [B, 2C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, global_pooling: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.pool_bias = nn.Sequential(GlobalPool(), nn.Linear(2 * channels, channels)) if global_pooling else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        if self.pool_bias is not None:
            h = h + self.pool_bias(h)[:, :, None, None]
        return F.relu(x + self.bn2(self.conv2(h)))


class GoNet(nn.Module):
    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config = config or NetConfig()
        c, h = config.channels, config.head_channels
        self.stem = nn.Sequential(nn.Conv2d(config.input_planes, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU())
        self.tower = nn.Sequential(*[ResidualBlock(c, global_pooling=(i % 3 == 2)) for i in range(config.blocks)])
        self.policy_trunk = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU())
        self.policy_board = nn.Conv2d(h, 1, 1)
        self.policy_pass = nn.Sequential(GlobalPool(), nn.Linear(2 * h, 1))
        self.value_trunk = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU())
        self.value_fc = nn.Sequential(GlobalPool(), nn.Linear(2 * h, 64), nn.ReLU(), nn.Linear(64, 2))
        self.ownership = nn.Conv2d(h, 1, 1)

    def forward(self, planes: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.tower(self.stem(planes))
        p = self.policy_trunk(x)
        policy = torch.cat([self.policy_board(p).flatten(1), self.policy_pass(p)], dim=1)
        v = self.value_trunk(x)
        value_and_score = self.value_fc(v)
        return {
            "policy": policy,  # logits over N² + 1 actions
            "value": torch.tanh(value_and_score[:, 0]),  # side to move: +1 win, -1 loss
            "score": value_and_score[:, 1],  # final margin for the side to move, in units of N² points
            "ownership": torch.tanh(self.ownership(v)[:, 0]),  # +1 side to move owns the point
        }


# ---------------------------------------------------------------------- input planes
def encode(states: list[GoState], history: int, liberties: bool = False) -> np.ndarray:
    """[B, 2·history + 3 (+ 6 liberty planes), N, N] float32 planes (see the module docstring)."""
    size = states[0].size
    points = list(states[0].geo.points)
    planes = np.zeros((len(states), 2 * history + 3 + (6 if liberties else 0), size, size), dtype=np.float32)
    for i, state in enumerate(states):
        own = state.to_play
        for t, board in enumerate(state.recent_boards(history)):
            stones = np.asarray(board, dtype=np.int8)[points].reshape(size, size)
            planes[i, 2 * t] = stones == own
            planes[i, 2 * t + 1] = (stones != own) & (stones != EMPTY)
        planes[i, 2 * history] = 1.0 if own == BLACK else 0.0
        planes[i, 2 * history + 1] = state.legal_mask()[:-1].reshape(size, size)
        if liberties:
            label, counts, _ = state._chains()
            labels = np.asarray(label)[points]
            stones = np.asarray(state.board, dtype=np.int8)[points]
            count = np.where(labels >= 0, np.asarray(counts + [0])[labels], 0).reshape(size, size)
            stones = stones.reshape(size, size)
            base = 2 * history + 3
            for side, colour in enumerate((own, 3 - own)):
                mine = stones == colour
                planes[i, base + 3 * side] = mine & (count == 1)
                planes[i, base + 3 * side + 1] = mine & (count == 2)
                planes[i, base + 3 * side + 2] = mine & (count >= 3)
    planes[:, 2 * history + 2] = 1.0
    return planes


# ---------------------------------------------------------------------- 8-fold symmetry
def transform(x: torch.Tensor | np.ndarray, symmetry: int):
    """One of the 8 dihedral symmetries on the last two axes: flip (s >= 4) then rotate s % 4 times."""
    if isinstance(x, np.ndarray):
        y = np.flip(x, -1) if symmetry >= 4 else x
        return np.ascontiguousarray(np.rot90(y, symmetry % 4, axes=(-2, -1)))
    y = torch.flip(x, (-1,)) if symmetry >= 4 else x
    return torch.rot90(y, symmetry % 4, dims=(-2, -1))


def inverse_transform(x: torch.Tensor | np.ndarray, symmetry: int):
    if isinstance(x, np.ndarray):
        y = np.rot90(x, -(symmetry % 4), axes=(-2, -1))
        return np.ascontiguousarray(np.flip(y, -1) if symmetry >= 4 else y)
    y = torch.rot90(x, -(symmetry % 4), dims=(-2, -1))
    return torch.flip(y, (-1,)) if symmetry >= 4 else y


def transform_policy(policy: np.ndarray, symmetry: int, size: int) -> np.ndarray:
    """Apply a symmetry to [..., N² + 1] policy vectors (pass stays last)."""
    board = policy[..., :-1].reshape(*policy.shape[:-1], size, size)
    moved = transform(board, symmetry).reshape(*policy.shape[:-1], size * size)
    return np.concatenate([moved, policy[..., -1:]], axis=-1)


# ---------------------------------------------------------------------- save / load
def save_net(path: Path | str, net: GoNet, extra: dict | None = None) -> Path:
    meta = {"format": FORMAT, "config": asdict(net.config)} | (extra or {})
    return save_checkpoint(path, dict(net.state_dict()), meta)


def load_net(path: Path | str) -> tuple[GoNet, dict]:
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise CasebookError(f"{path} is not a Go network checkpoint", hint="train one with `mlcasebook go train`")
    net = GoNet(NetConfig(**meta["config"]))
    net.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in arrays.items()})
    net.eval()
    return net, meta


def shipped_net() -> Path:
    """The path of the 9x9 network that ships with the package (the engine's default)."""
    if not SHIPPED_NET.is_file():
        raise CasebookError(f"the shipped 9x9 network is missing ({SHIPPED_NET})",
                            hint="reinstall mlcasebook, or pass --model PATH (--rollouts: search without a network)")
    return SHIPPED_NET


def shipped_net_card() -> dict:
    """What the shipped network is, how it was trained and how strong it measured (models/go9.json)."""
    import json

    return json.loads(SHIPPED_NET.with_suffix(".json").read_text())


class NetEvaluator:
    """The MCTS evaluator backed by a GoNet; a batch of states is one forward pass.

    ``symmetry``: "none", "random" (one random symmetry per call, AlphaGo Zero's choice during
    self-play) or "all" (average over the 8, 8x the compute, smoother priors).
    """

    def __init__(self, net: GoNet, symmetry: str = "random", seed: int = 0, device: str = "cpu",
                 frozen: bool = True):
        if symmetry not in ("none", "random", "all"):
            raise CasebookError(f"unknown symmetry mode {symmetry!r}", hint="none, random or all")
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.symmetry = symmetry
        self.rng = np.random.default_rng(seed)
        # on the CPU a frozen TorchScript copy (BatchNorm folded into the convolutions, oneDNN
        # kernels) runs the 6x64 net ~30 % faster at search batch sizes (searches ~7 %); one per board size.
        # TorchScript is deprecated in favour of torch.compile, which would compile again for
        # every batch size at engine start; if TorchScript goes away the eager net plays on.
        self.frozen = frozen and self.device.type == "cpu"
        self._frozen_by_size: dict[int, torch.nn.Module] = {}

    def inference_module(self, planes: torch.Tensor) -> torch.nn.Module:
        """What runs the forward pass for planes of this board size (the frozen copy when enabled)."""
        if not self.frozen:
            return self.net
        size = planes.shape[-1]
        if size not in self._frozen_by_size:
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the deprecation notices, once per board size
                    traced = torch.jit.trace(self.net, planes[:1], strict=False, check_trace=False)
                    self._frozen_by_size[size] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            except Exception:  # noqa: BLE001 — an exotic build without TorchScript still plays, just slower
                self._frozen_by_size[size] = self.net
        return self._frozen_by_size[size]

    @classmethod
    def load(cls, path: Path | str, symmetry: str = "random", device: str = "cpu", seed: int = 0) -> NetEvaluator:
        return cls(load_net(path)[0], symmetry, seed=seed, device=device)

    def predict(self, states: list[GoState], all_heads: bool = False) -> dict[str, np.ndarray]:
        """Policy logits and value; with ``all_heads`` also score and ownership (analysis, not search)."""
        size = states[0].size
        config = self.net.config
        planes = torch.from_numpy(encode(states, config.history, config.liberties)).to(self.device)
        symmetries = {"none": [0], "random": [int(self.rng.integers(8))], "all": list(range(8))}[self.symmetry]
        policy = np.zeros((len(states), size * size + 1), dtype=np.float64)
        value, score = np.zeros(len(states)), np.zeros(len(states))
        ownership = np.zeros((len(states), size, size))
        module = self.inference_module(planes)
        with torch.inference_mode():
            for symmetry in symmetries:
                out = module(transform(planes, symmetry))
                logits = out["policy"].double()
                board = inverse_transform(logits[:, :-1].reshape(-1, size, size), symmetry).reshape(len(states), -1)
                policy += torch.cat([board, logits[:, -1:]], 1).cpu().numpy()
                value += out["value"].double().cpu().numpy()
                if all_heads:
                    score += out["score"].double().cpu().numpy()
                    ownership += inverse_transform(out["ownership"].double(), symmetry).cpu().numpy()
        count = len(symmetries)
        heads = {"policy_logits": policy / count, "value": value / count}
        if all_heads:  # value, score (in units of N² points) and ownership: all from the side to move's view
            heads |= {"score": score / count, "ownership": ownership / count}
        return heads

    def evaluate(self, states: list[GoState]) -> tuple[np.ndarray, np.ndarray]:
        out = self.predict(states)
        logits = out["policy_logits"]
        masks = np.stack([state.legal_mask() for state in states])
        logits = np.where(masks, logits, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        priors = np.exp(logits)
        priors /= priors.sum(axis=1, keepdims=True)
        return priors.astype(np.float32), out["value"].astype(np.float32)


def losses(out: dict[str, torch.Tensor], policy_target: torch.Tensor, value_target: torch.Tensor,
           ownership_target: torch.Tensor | None = None, score_target: torch.Tensor | None = None,
           ownership_weight: float = 1.5 / 81, score_weight: float = 0.02,
           policy_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """AlphaGo Zero's loss (policy cross-entropy + value MSE) plus KataGo's auxiliary terms.

    ``policy_weight`` (0/1 per example) drops the policy term of fast-search moves (playout-cap
    randomisation); the policy loss is averaged over the weighted examples only, so its scale
    does not shrink with the fraction of full searches.
    Ownership is summed over points and scaled by ``ownership_weight`` (KataGo: 1.5 / board area);
    the score margin (in units of N² points) uses a Huber loss so blow-out games do not dominate.
    """
    cross_entropy = -(policy_target * F.log_softmax(out["policy"], dim=1)).sum(1)
    if policy_weight is None:
        policy = cross_entropy.mean()
    else:
        policy = (cross_entropy * policy_weight).sum() / policy_weight.sum().clamp(min=1.0)
    value = F.mse_loss(out["value"], value_target)
    total = policy + value
    parts = {"policy": policy, "value": value}
    if ownership_target is not None:
        ownership = ((out["ownership"] - ownership_target) ** 2).sum((1, 2)).mean() * ownership_weight
        total = total + ownership
        parts["ownership"] = ownership
    if score_target is not None:
        score = F.huber_loss(out["score"], score_target)
        total = total + score_weight * score
        parts["score"] = score
    parts["total"] = total
    return parts
