"""HiResCAM (Draelos & Carin, 2020): gradient times activation, element-wise, summed
over channels; unlike Grad-CAM it does not average the gradient over space, so the map
shows where the score's gradient actually points (faithful for a CNN ending in one
linear layer after global pooling)."""

import torch

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class HiResCAM(SaliencyMethod):
    name = "hirescam"
    title = "HiResCAM"

    def compute(self, p: LayerPass) -> torch.Tensor:
        return (p.grad * p.act).sum(1)
