"""The one stand-in model the sharing tests use: a tiny random audio classifier saved as a model folder.

It stands for an exported hf_bio model (`RUN_DIR/model/`): anything that
`transformers.pipeline("audio-classification", model=DIR)` loads. After hf_bio's own model is merged,
only this helper changes (to save a tiny `BioClassifierModel`); the tests that call it stay the same.
"""

from __future__ import annotations

from pathlib import Path


def make_tiny_audio_classifier(directory: str | Path, labels: list[str], seed: int = 0) -> Path:
    """Save a tiny random `Wav2Vec2ForSequenceClassification` + feature extractor into `directory`.

    hidden_size 32, 2 layers, 3 small convs (total stride 20): a forward pass on a second of 16 kHz
    audio takes milliseconds on a CPU. `id2label` follows `labels`.
    """
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be at least two distinct names, got {labels!r}")
    directory = Path(directory)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="group",
        classifier_proj_size=16,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    with torch.no_grad():
        # The default init gives near-uniform probabilities; wider weights make the top label visible.
        model.projector.weight.normal_(0.0, 1.0)
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(directory)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16_000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(directory)
    return directory
