"""Model-parameter randomisation check (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018).

The network's layers are re-initialised one after another from the top (the output
layer first), cumulatively; after each step every method's maps are recomputed for the
same images and classes and compared with the trained model's maps by Spearman rank
correlation. A map that explains the model must change once the weights it explains are
gone; one that barely changes (an edge detector would not change at all) shows the
image, not the model.

A "layer" is a module holding parameters of its own; normalisation layers (batch, group,
layer, instance norm) go with the layer before them, as they belong to one block.
Re-initialisation uses each module's `reset_parameters`, on the CPU under a forked,
seeded RNG, so the random weights are the same on every device.
"""

import copy
import logging
from collections.abc import Iterator

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

__all__ = ["parameter_layers", "cascade", "step_bounds", "spearman_rows", "half_index"]

log = logging.getLogger(__name__)

_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def parameter_layers(model: nn.Module) -> list[list[str]]:
    """Groups of module names, input to output: each a layer with its own parameters,
    followed by the normalisation layers after it."""
    groups: list[list[str]] = []
    for name, m in model.named_modules():
        if not any(True for _ in m.parameters(recurse=False)):
            continue
        if isinstance(m, _NORMS) and groups:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups


def _reset(module: nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        else:
            log.info("%s has no reset_parameters: N(0, 0.02) weights", type(module))
            for p in module.parameters(recurse=False):
                nn.init.normal_(p, std=0.02)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()


def cascade(
    model: nn.Module, seed: int, max_steps: int | None = None
) -> Iterator[tuple[int, str, nn.Module]]:
    """(layers randomised, top randomised layer's name, model) from the top, cumulatively.

    With `max_steps` None every layer is a step (1..L); otherwise the L layers are cut,
    from the top, into at most `max_steps` runs of consecutive layers of (nearly) equal
    length, and each step randomises one more run (the count then jumps, e.g. 7, 14, ...
    for L = 54 and 8 steps). Layer i from the top always gets the same random weights
    (seed + i), so the fully random model is the same at any number of steps. The
    yielded model is one copy, randomised further at each step and on the trained
    model's device; the trained model is not touched.
    """
    device = next(model.parameters()).device
    cpu = copy.deepcopy(model).cpu()
    work = copy.deepcopy(model).eval()
    modules = dict(cpu.named_modules())
    groups = list(reversed(parameter_layers(cpu)))
    for start, stop in step_bounds(len(groups), max_steps):
        for k in range(start, stop):
            for name in groups[k]:
                _reset(modules[name], seed + k + 1)
        work.load_state_dict(cpu.state_dict())
        yield stop, groups[start][0], work.to(device)


def step_bounds(n_layers: int, max_steps: int | None) -> list[tuple[int, int]]:
    """(first, end) layer positions from the top of each cascade step: runs of about
    equal length, one of them ending at `half_index` (with two steps or more), so the
    randomisation verdict, taken once half the layers are random, sees the same random
    model in fewer steps as in one step per layer."""
    steps = n_layers if max_steps is None else max(1, min(max_steps, n_layers))
    if steps == 1 or steps == n_layers:
        ends = [round(i * n_layers / steps) for i in range(steps + 1)]
    else:
        h = half_index(n_layers)
        top = min(max(round(steps * h / n_layers), 1, steps - (n_layers - h)), h)
        low = steps - top
        ends = [round(i * h / top) for i in range(top + 1)]
        ends += [h + round(i * (n_layers - h) / low) for i in range(1, low + 1)]
    return list(zip(ends[:-1], ends[1:], strict=True))


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of a [N, D] with the same row of b.

    Ties get average ranks. Where `a`'s row is constant the correlation is undefined
    (NaN); where only `b`'s is (a map switched off entirely) it shares no ranking with
    `a` and counts as 0.
    """
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    na, nb = np.sqrt((ra * ra).sum(1)), np.sqrt((rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(1) / (na * nb)
    rho[(nb == 0) & (na > 0)] = 0.0
    rho[na == 0] = np.nan
    return rho


def half_index(n_layers: int) -> int:
    """The step at which half of `n_layers` are random (rounded up)."""
    return (n_layers + 1) // 2
