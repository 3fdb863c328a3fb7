"""LayerCAM (Jiang et al., IEEE TIP 2021): activations weighted element-wise by their
positive gradient, so locations with negative evidence do not cancel positive ones."""

import torch

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class LayerCAM(SaliencyMethod):
    name = "layercam"
    title = "LayerCAM"

    def compute(self, p: LayerPass) -> torch.Tensor:
        return (p.grad.clamp(min=0) * p.act).sum(1)
