"""Grad-CAM++ (Chattopadhay et al., WACV 2018): higher-order weights of positive gradients."""

import torch

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class GradCAMPlusPlus(SaliencyMethod):
    name = "gradcam++"
    title = "Grad-CAM++"

    def compute(self, p: LayerPass) -> torch.Tensor:
        # closed form for an exponential score, as in pytorch-grad-cam (eps 1e-6 too):
        # alpha = g^2 / (2 g^2 + sum(A) g^3), weights = sum(alpha relu(g))
        act, grad = p.act, p.grad
        g2 = grad.pow(2)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g2 * grad
        alpha = torch.where(grad != 0, g2 / (denom + 1e-6), torch.zeros_like(grad))
        w = (alpha * grad.clamp(min=0)).sum(dim=(2, 3))
        return (w[:, :, None, None] * act).sum(1)
