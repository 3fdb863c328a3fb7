"""Score-CAM (Wang et al., CVPR-W 2020): gradient-free. Each channel, upsampled and
scaled to [0, 1], masks the input; the channel's weight is the softmax over channels of
the target class's logit on its masked input, as in pytorch-grad-cam. Costs one forward
pass per channel and image, made in chunks of `batch_size` masked inputs."""

import torch
import torch.nn.functional as F

from cnnatlas.explain.saliency.base import LayerPass, SaliencyMethod, register


@register
class ScoreCAM(SaliencyMethod):
    name = "scorecam"
    title = "Score-CAM"
    gradient = False

    def compute(self, p: LayerPass) -> torch.Tensor:
        n, k = p.act.shape[:2]
        up = F.interpolate(
            p.act, size=p.x.shape[-2:], mode="bilinear", align_corners=True
        )
        lo = up.amin(dim=(2, 3), keepdim=True)
        hi = up.amax(dim=(2, 3), keepdim=True)
        up = (up - lo) / (hi - lo + 1e-8)
        scores = torch.empty(n, k, device=p.act.device)
        # one image's channels at a time keeps the masked batch at `batch_size` inputs
        with torch.no_grad():
            for i in range(n):
                cls = p.cls[i]
                for start in range(0, k, p.batch_size):
                    masks = up[i, start : start + p.batch_size, None]
                    logits = p.model(p.x[i : i + 1] * masks.to(p.x.dtype))
                    scores[i, start : start + len(masks)] = logits[:, cls].float()
        w = scores.softmax(dim=1)
        return (w[:, :, None, None] * p.act).sum(1)
