"""Checkpoints cnnatlas reads: from a training script, or from pretrained torchvision
weights. cnnatlas loads a state_dict, or a dict holding one under `state_dict`,
`model_state_dict` or `model`, with torch.load(weights_only=True)."""

import json
from pathlib import Path

import torch
import torchvision
from torch import nn


def save_training_checkpoint(
    model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, path: str | Path
) -> None:
    """Inside a training loop: the weights under `model_state_dict`, beside the optimizer
    state and the epoch (tensors, numbers and strings only, so weights_only loading works)."""
    torch.save(
        {
            "epoch": epoch,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
        },
        path,
    )


def save_pretrained(arch: str, path: str | Path, class_index: str | Path) -> None:
    """A torchvision model's pretrained weights (downloaded once by torchvision) as a
    state_dict, and its class names in output order as a class_index file."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    model = torchvision.models.get_model(arch, weights=weights)
    torch.save(model.state_dict(), path)
    Path(class_index).write_text(json.dumps(weights.meta["categories"]))


if __name__ == "__main__":
    save_pretrained("resnet18", "resnet18_imagenet.pt", "imagenet_classes.json")
