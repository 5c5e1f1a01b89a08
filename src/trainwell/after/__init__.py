"""After training: transfer learning from pretrained weights (docs/transfer.md)."""

from trainwell.after.transfer import (
    freeze_,
    layer_names,
    list_pretrained,
    load_matching_,
    read_weights,
    unfreeze_,
)

__all__ = [
    "freeze_",
    "layer_names",
    "list_pretrained",
    "load_matching_",
    "read_weights",
    "unfreeze_",
]
