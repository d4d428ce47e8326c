"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

The gradient of the class logit with respect to a convolutional layer's activations, averaged
over space, weights that layer's channels; their ReLU'd weighted sum, upsampled to the image,
is the heat map. Hooks capture the activations and their gradient, so any ``torch.nn.Module``
works without changes to its code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GradCam:
    heatmap: np.ndarray      # (H, W) float in [0, 1], the size of the input image
    target: int              # the class explained
    overlay: object          # PIL.Image: the heat map blended over the image

    def save(self, path) -> None:
        self.overlay.save(path)


def grad_cam(module, layer, inputs, target: int | None = None) -> tuple[np.ndarray, int]:
    """Heat map ``(H, W)`` in [0, 1] for one preprocessed input ``(1, C, H, W)`` and the class
    explained (``target``, default: the top-scoring class). ``layer`` is a submodule of
    ``module`` whose output is a feature map ``(1, K, h, w)``."""
    import torch

    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(keep)
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            inputs = inputs.detach().requires_grad_(True)  # gradients flow even through frozen weights
            logits = module(inputs)
            chosen = int(logits[0].argmax()) if target is None else int(target)
            module.zero_grad(set_to_none=True)
            logits[0, chosen].backward()
    finally:
        handle.remove()
        module.train(was_training)
    if "gradient" not in captured:
        raise ValueError("the target layer did not take part in the forward pass")
    activation, gradient = captured["activation"][0].detach(), captured["gradient"][0]
    weights = gradient.mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * activation).sum(dim=0))
    cam = torch.nn.functional.interpolate(cam[None, None], size=inputs.shape[-2:], mode="bilinear",
                                          align_corners=False)[0, 0]
    cam = cam - cam.min()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).numpy().astype(np.float32), chosen


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45):
    """The heat map (jet colours) blended over a uint8 ``(H, W, 3)`` image, as a PIL image."""
    from matplotlib import colormaps
    from PIL import Image

    colours = (colormaps["jet"](heatmap)[..., :3] * 255).astype(np.float32)
    if colours.shape[:2] != image.shape[:2]:
        colours = np.asarray(Image.fromarray(colours.astype(np.uint8)).resize(image.shape[1::-1]), np.float32)
    # stronger evidence shows more colour; weak areas stay close to the photograph
    weight = alpha * np.asarray(Image.fromarray((heatmap * 255).astype(np.uint8)).resize(image.shape[1::-1]),
                                np.float32)[..., None] / 255
    blended = (1 - weight) * image.astype(np.float32) + weight * colours
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def explain(classifier, image: np.ndarray, target: int | None = None) -> GradCam:
    """Grad-CAM of a ``DermClassifier`` on one uint8 ``(H, W, 3)`` image at its input size (of an
    ensemble: of its main member, the first)."""
    from PIL import Image

    from .data import resize_rgb
    from .models import to_pixels

    classifier = classifier.explained
    size = classifier.image_size
    sized = image if image.shape[:2] == (size, size) else resize_rgb(Image.fromarray(image), size)
    inputs = to_pixels(sized[None], size)  # the modules normalise inside: float 0..255 NCHW in
    heatmap, chosen = grad_cam(classifier.module, classifier.gradcam_layer, inputs, target)
    return GradCam(heatmap, chosen, overlay(sized, heatmap))
