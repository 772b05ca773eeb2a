"""The tiny hf_bio model the sharing tests use, saved as an exported model folder (`RUN_DIR/model/`)."""

from __future__ import annotations

from pathlib import Path


def make_tiny_audio_classifier(directory: str | Path, labels: list[str], seed: int = 0) -> Path:
    """Save a `BioClassifierModel` on the tiny RANDOM HuBERT backbone, with a random head, into `directory`.

    A forward pass on a second of 16 kHz audio takes milliseconds on a CPU. `id2label` follows `labels`.
    """
    import torch

    from hf_bio.modeling_bio import BioClassifierModel, save_pretrained_with_extractor

    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be at least two distinct names, got {labels!r}")
    torch.manual_seed(seed)
    model = BioClassifierModel.from_backbone(
        "tiny-random-hubert", id2label=list(labels), layer_selection=2, head_hidden_sizes=[16, 8]
    )
    return save_pretrained_with_extractor(model.eval(), directory)
