"""Score-CAM (Wang et al., CVPR-W 2020): gradient-free. Each channel, upsampled and
scaled to [0, 1], masks the input; the channel's weight is the softmax over channels of
the target class's logit on its masked input, as in pytorch-grad-cam. Costs one forward
pass per channel and image, made in chunks of `batch_size` masked inputs: the costliest
method by far (2,048 passes per image at a ResNet-50's layer4), drawn and checked only
when listed."""

import torch
import torch.nn.functional as F

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class ScoreCAM(SaliencyMethod):
    name = "scorecam"
    title = "Score-CAM"
    gradient = False

    passes_per_channel = 1

    def compute(self, p: LayerPass) -> torch.Tensor:
        n, k = p.act.shape[:2]
        scores = torch.empty(n, k, device=p.act.device)
        # one image's channels at a time, `batch_size` of them upsampled at once: the
        # masks of a whole batch at the input's size would not fit in memory
        # (64 images x 2048 channels x 224 x 224 floats are 26 GB)
        with torch.no_grad():
            for i in range(n):
                cls = p.cls[i]
                for start in range(0, k, p.batch_size):
                    masks = _masks(
                        p.act[i, start : start + p.batch_size], p.x.shape[-2:]
                    )
                    logits = p.model(p.x[i : i + 1] * masks[:, None].to(p.x.dtype))
                    scores[i, start : start + len(masks)] = logits[:, cls].float()
        w = scores.softmax(dim=1)
        return (w[:, :, None, None] * p.act).sum(1)


def _masks(act: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Channels [k, h, w] upsampled to `size` and scaled to [0, 1] each."""
    up = F.interpolate(act[None], size=size, mode="bilinear", align_corners=True)[0]
    lo = up.amin(dim=(1, 2), keepdim=True)
    hi = up.amax(dim=(1, 2), keepdim=True)
    return (up - lo) / (hi - lo + 1e-8)
