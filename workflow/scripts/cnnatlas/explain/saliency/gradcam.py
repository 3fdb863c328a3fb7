"""Grad-CAM (Selvaraju et al., ICCV 2017): channels weighted by their mean gradient."""

import torch

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class GradCAM(SaliencyMethod):
    name = "gradcam"
    title = "Grad-CAM"

    def compute(self, p: LayerPass) -> torch.Tensor:
        w = p.grad.mean(dim=(2, 3))
        return (w[:, :, None, None] * p.act).sum(1)
