"""Errors that end a run with a message a user can act on."""

__all__ = [
    "CnnatlasError",
    "DatasetError",
    "ModelError",
    "CheckpointError",
    "LayerError",
    "ConfigError",
]


class CnnatlasError(Exception):
    """Base class: the message names the file or key and says how to fix it."""


class DatasetError(CnnatlasError):
    """The dataset (folder, manifest or an image in it) cannot be used."""


class ModelError(CnnatlasError):
    """The model spec cannot be built."""


class CheckpointError(CnnatlasError):
    """A checkpoint cannot be read or does not fit the model."""


class LayerError(CnnatlasError):
    """A configured layer does not exist in the model."""


class ConfigError(CnnatlasError):
    """A config value does not fit the data or the model (e.g. a class_index)."""
