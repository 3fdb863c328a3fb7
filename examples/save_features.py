"""A folder for `features_from`, saved from a torchvision model wherever it runs: one
<layer>.npy [N, D] per layer (4-D maps averaged over space), logits.npy [N, K] and
paths.txt (each row's image, relative to the dataset's root). cnnatlas then makes its
maps from these files without running the model."""

from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.models.feature_extraction import (
    create_feature_extractor,
    get_graph_node_names,
)


def save_features(model, layers, root, folder, transform, batch_size=64) -> None:
    """Features of `layers` (FX node names) and the logits of every image of the
    ImageFolder `root`, written to `folder` one batch at a time."""
    dataset = torchvision.datasets.ImageFolder(root, transform)
    output = get_graph_node_names(model)[1][-1]  # the node whose value is the output
    nodes = {layer: layer for layer in layers} | {output: "logits"}
    extractor = create_feature_extractor(model.eval(), nodes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, row = {}, 0
    with torch.inference_mode():
        for x, _ in DataLoader(dataset, batch_size=batch_size):
            for name, t in extractor(x).items():
                t = t.mean((2, 3)) if t.ndim == 4 else t.flatten(1)
                if name not in files:
                    shape = (len(dataset), t.shape[1])
                    path = folder / f"{name}.npy"
                    files[name] = np.lib.format.open_memmap(
                        path, "w+", "float32", shape
                    )
                files[name][row : row + len(t)] = t.numpy()
            row += len(x)
    for f in files.values():
        f.flush()
    paths = [Path(p).relative_to(root).as_posix() for p, _ in dataset.samples]
    (folder / "paths.txt").write_text("".join(p + "\n" for p in paths))


if __name__ == "__main__":
    weights = torchvision.models.ResNet50_Weights.DEFAULT
    save_features(
        torchvision.models.resnet50(weights=weights),
        ["layer3", "layer4", "avgpool"],
        root="data/val",
        folder="features/imagenet",
        transform=weights.transforms(),
    )
