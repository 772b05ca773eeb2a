"""Convert a published AVES checkpoint (torchaudio `wav2vec2_model` state dict) into a transformers folder.

AVES (earthspecies, Hagiwara 2023) is a HuBERT pre-trained on animal and environmental sounds. It is not on
the Hub; its authors publish it as a torchaudio state dict plus a JSON of `wav2vec2_model` arguments:

    https://storage.googleapis.com/esp-public-files/ported_aves/aves-base-bio.torchaudio.pt
    https://storage.googleapis.com/esp-public-files/ported_aves/aves-base-bio.torchaudio.model_config.json

`convert_aves` turns that pair into a `HubertModel` folder (config.json, model.safetensors,
preprocessor_config.json) that `from_pretrained` loads like any Hub backbone. The mapping is one-to-one:
every source tensor lands in exactly one target parameter, and a checkpoint with a tensor left over or a
parameter left unfilled is refused with the key names, never loaded half-way.

Hidden states: torchaudio's `extract_features` returns the L transformer layer outputs; transformers'
`hidden_states` has L + 1, index 0 being the encoder input, and `hidden_states[1:]` equals torchaudio's
list (AVES and BirdAVES base are post-norm). For pre-norm models (`encoder_layer_norm_first`, the BirdAVES
large ones) the encoder's final LayerNorm shows in `last_hidden_state`; transformers 5 leaves it out of
`hidden_states[-1]`, transformers 4 applied it there.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hf_bio.atomic import replace_dir

TORCHAUDIO_URL = "https://storage.googleapis.com/esp-public-files/ported_aves/aves-base-bio.torchaudio.pt"
TORCHAUDIO_CONFIG_URL = (
    "https://storage.googleapis.com/esp-public-files/ported_aves/aves-base-bio.torchaudio.model_config.json"
)
_DOWNLOAD_HINT = (
    "download the torchaudio port instead: the checkpoint "
    f"{TORCHAUDIO_URL} and its config {TORCHAUDIO_CONFIG_URL}, then run "
    "`hf-bio convert-aves aves-base-bio.torchaudio.pt aves-base-bio.torchaudio.model_config.json OUT_DIR`"
)

# The arguments of `torchaudio.models.wav2vec2_model`, all required but the last (AVES's JSON omits it).
TORCHAUDIO_CONFIG_KEYS = (
    "extractor_mode",
    "extractor_conv_layer_config",
    "extractor_conv_bias",
    "encoder_embed_dim",
    "encoder_projection_dropout",
    "encoder_pos_conv_kernel",
    "encoder_pos_conv_groups",
    "encoder_num_layers",
    "encoder_num_heads",
    "encoder_attention_dropout",
    "encoder_ff_interm_features",
    "encoder_ff_interm_dropout",
    "encoder_dropout",
    "encoder_layer_norm_first",
    "encoder_layer_drop",
    "aux_num_out",
)

# Weight norm of the positional convolution is stored under either name, depending on the torch version
# that saved it (`nn.utils.weight_norm` vs `nn.utils.parametrizations.weight_norm`).
_WEIGHT_NORM_NAMES = {
    "weight_g": "g",
    "weight_v": "v",
    "parametrizations.weight.original0": "g",
    "parametrizations.weight.original1": "v",
}


def read_torchaudio_config(path: str | Path) -> dict[str, Any]:
    """Read and check a torchaudio `wav2vec2_model` config JSON (AVES's `*.torchaudio.model_config.json`).

    Raises:
        ValueError: the file is missing or not JSON, a key is missing or unknown, or `aux_num_out` is set
            (a CTC head, which `HubertModel` has no place for).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file; {_DOWNLOAD_HINT}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({err}); expected AVES's *.torchaudio.model_config.json") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object of wav2vec2_model arguments, got {type(config).__name__}")
    if "model" in config or "task" in config or "cfg" in config:
        raise ValueError(f"{path} looks like a fairseq config (keys {sorted(config)}); {_DOWNLOAD_HINT}")
    unknown = sorted(set(config) - set(TORCHAUDIO_CONFIG_KEYS))
    missing = [key for key in TORCHAUDIO_CONFIG_KEYS[:-1] if key not in config]
    if unknown or missing:
        raise ValueError(
            f"{path}: not a torchaudio wav2vec2_model config: missing keys {missing}, unknown keys {unknown}"
        )
    if config.get("aux_num_out") is not None:
        raise ValueError(
            f"{path}: aux_num_out={config['aux_num_out']} (a CTC output layer); only encoders without an aux "
            "head convert to a HubertModel. Use the pre-trained (not fine-tuned) checkpoint"
        )
    if config["extractor_mode"] not in ("group_norm", "layer_norm"):
        raise ValueError(
            f"{path}: extractor_mode={config['extractor_mode']!r}; expected 'group_norm' or 'layer_norm'"
        )
    conv = config["extractor_conv_layer_config"]
    if not conv or not all(isinstance(layer, list | tuple) and len(layer) == 3 for layer in conv):
        raise ValueError(
            f"{path}: extractor_conv_layer_config must be a list of [channels, kernel, stride] triples, got {conv!r}"
        )
    return config


def hubert_config_from_torchaudio(config: dict[str, Any]):
    """The `transformers.HubertConfig` equivalent to torchaudio `wav2vec2_model(**config)` arguments.

    Masking (SpecAugment) is switched off: the torchaudio checkpoint carries no mask embedding, and the
    converted model is meant to be used frozen.
    """
    from transformers import HubertConfig

    conv = [tuple(int(v) for v in layer) for layer in config["extractor_conv_layer_config"]]
    return HubertConfig(
        architectures=["HubertModel"],
        feat_extract_norm="group" if config["extractor_mode"] == "group_norm" else "layer",
        feat_extract_activation="gelu",
        conv_dim=[c for c, _, _ in conv],
        conv_kernel=[k for _, k, _ in conv],
        conv_stride=[s for _, _, s in conv],
        conv_bias=bool(config["extractor_conv_bias"]),
        feat_proj_layer_norm=True,  # torchaudio's FeatureProjection always normalises first
        feat_proj_dropout=float(config["encoder_projection_dropout"]),
        hidden_size=int(config["encoder_embed_dim"]),
        num_hidden_layers=int(config["encoder_num_layers"]),
        num_attention_heads=int(config["encoder_num_heads"]),
        intermediate_size=int(config["encoder_ff_interm_features"]),
        hidden_act="gelu",
        num_conv_pos_embeddings=int(config["encoder_pos_conv_kernel"]),
        num_conv_pos_embedding_groups=int(config["encoder_pos_conv_groups"]),
        do_stable_layer_norm=bool(config["encoder_layer_norm_first"]),
        attention_dropout=float(config["encoder_attention_dropout"]),
        activation_dropout=float(config["encoder_ff_interm_dropout"]),
        hidden_dropout=float(config["encoder_dropout"]),
        layerdrop=float(config["encoder_layer_drop"]),
        layer_norm_eps=1e-5,  # torch's LayerNorm/GroupNorm default, used throughout torchaudio's model
        mask_time_prob=0.0,
        mask_feature_prob=0.0,
    )


def load_torchaudio_state_dict(path: str | Path) -> dict[str, Any]:
    """Load a torchaudio `wav2vec2_model` state dict safely (`torch.load(weights_only=True)`).

    Raises:
        ValueError: the file is missing, truncated or corrupt, holds something other than a flat state
            dict of tensors, or is a fairseq checkpoint (the message says which file to download instead).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file; {_DOWNLOAD_HINT}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        # fairseq pickles its argparse/omegaconf settings next to the weights; weights_only refuses them.
        if any(marker in text for marker in ("argparse", "omegaconf", "fairseq")):
            raise ValueError(f"{path} is a fairseq checkpoint, which hf-bio does not convert; {_DOWNLOAD_HINT}") from err
        raise ValueError(
            f"{path}: not a plain state dict of tensors (torch.load(weights_only=True) refused it: "
            f"{text.splitlines()[0] if text else err!r}); {_DOWNLOAD_HINT}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"{path}: cannot read this PyTorch checkpoint ({err}); the file is truncated or corrupt, "
            f"download it again ({TORCHAUDIO_URL})"
        ) from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a state dict, got a {type(checkpoint).__name__}; {_DOWNLOAD_HINT}")
    if "model" in checkpoint and ("cfg" in checkpoint or "args" in checkpoint):
        raise ValueError(f"{path} is a fairseq checkpoint, which hf-bio does not convert; {_DOWNLOAD_HINT}")
    if any(key.startswith(("encoder.layers.", "post_extract_proj.", "mask_emb")) for key in checkpoint):
        raise ValueError(f"{path} holds fairseq parameter names, which hf-bio does not convert; {_DOWNLOAD_HINT}")
    not_tensors = sorted(key for key, value in checkpoint.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"{path}: expected a flat state dict of tensors; these entries are not tensors: {_some(not_tensors)}"
        )
    return checkpoint


def _some(names: list[str], limit: int = 12) -> str:
    """A readable list of key names: all of them when few, else the first `limit` and a count."""
    if len(names) <= limit:
        return str(names)
    return f"{names[:limit]} and {len(names) - limit} more"


def _target_name(source: str, weight_norm_target: dict[str, str]) -> str:
    """The transformers parameter name of one torchaudio parameter name (unchanged if no rule applies)."""
    if source.startswith("encoder.feature_projection."):
        name = source.removeprefix("encoder.")
    elif source.startswith("encoder.transformer."):
        name = "encoder." + source.removeprefix("encoder.transformer.")
    else:
        name = source  # feature_extractor.conv_layers.* is named alike in both
    for suffix, role in _WEIGHT_NORM_NAMES.items():
        if name.startswith("encoder.pos_conv_embed.conv.") and name.endswith(suffix):
            return name.removesuffix(suffix) + weight_norm_target[role]
    return name


def convert_state_dict(state_dict: dict[str, Any], hubert_config):
    """Build a `transformers.HubertModel` holding exactly the torchaudio `state_dict`'s weights (eval mode).

    Raises:
        ValueError: a source tensor has no target, a target parameter gets no tensor, or shapes differ;
            the message lists the keys.
    """
    import torch
    from transformers import HubertModel

    # Built on the meta device: a random initialisation of ~95 M parameters would be overwritten anyway.
    with torch.device("meta"):
        model = HubertModel(hubert_config)
    target = model.state_dict()
    # Map to whichever weight-norm naming this transformers/torch pair uses.
    if "encoder.pos_conv_embed.conv.weight_g" in target:
        weight_norm_target = {"g": "weight_g", "v": "weight_v"}
    else:
        weight_norm_target = {"g": "parametrizations.weight.original0", "v": "parametrizations.weight.original1"}

    mapped: dict[str, torch.Tensor] = {}
    for source, tensor in state_dict.items():
        name = _target_name(source, weight_norm_target)
        if name in mapped:
            raise ValueError(f"two checkpoint tensors map to {name!r} (one is {source!r}); the checkpoint is malformed")
        mapped[name] = tensor
    unexpected = sorted(set(mapped) - set(target))
    missing = sorted(set(target) - set(mapped))
    if unexpected or missing:
        raise ValueError(
            "the checkpoint does not match its config: "
            f"checkpoint tensors with no place in HubertModel: {_some(unexpected)}; "
            f"HubertModel parameters the checkpoint lacks: {_some(missing)}. "
            "Check that CONFIG_JSON is the config published with this CHECKPOINT"
        )
    bad_shapes = [
        f"{name}: checkpoint {tuple(mapped[name].shape)} vs model {tuple(target[name].shape)}"
        for name in sorted(target)
        if mapped[name].shape != target[name].shape
    ]
    if bad_shapes:
        raise ValueError(f"the checkpoint does not match its config, shapes differ: {_some(bad_shapes)}")
    model.load_state_dict({name: t.to(target[name].dtype) for name, t in mapped.items()}, strict=True, assign=True)
    left_on_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:  # a buffer outside the state dict would have no value; never save such a model
        raise ValueError(f"HubertModel tensors the checkpoint cannot fill: {left_on_meta}")
    return model.eval()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_aves(
    checkpoint: str | Path,
    config_json: str | Path,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
) -> Path:
    """Convert AVES's torchaudio checkpoint + config into a transformers `HubertModel` folder.

    Writes `config.json` (recording the source file names and SHA-256), `model.safetensors` and a
    `preprocessor_config.json` (16 kHz, no normalisation, attention masks), atomically: a temporary
    folder beside `output_dir` is renamed into place only once complete.

    Args:
        checkpoint: `aves-base-bio.torchaudio.pt` (any torchaudio `wav2vec2_model` state dict works).
        config_json: `aves-base-bio.torchaudio.model_config.json`.
        output_dir: the folder to create; pass it wherever a backbone name or Hub id is accepted.
        overwrite: replace an existing `output_dir` (otherwise an existing non-empty folder is an error).

    Returns:
        `output_dir` as a `Path`.

    Raises:
        ValueError: bad inputs (see `read_torchaudio_config`, `load_torchaudio_state_dict`,
            `convert_state_dict`), or `output_dir` exists and `overwrite` is false.
    """
    from transformers import Wav2Vec2FeatureExtractor

    checkpoint, config_json, output_dir = Path(checkpoint), Path(config_json), Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} exists and is not a folder; choose another OUT_DIR")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"{output_dir} exists and is not empty; choose another OUT_DIR or pass --overwrite")
    config = read_torchaudio_config(config_json)
    model = convert_state_dict(load_torchaudio_state_dict(checkpoint), hubert_config_from_torchaudio(config))
    model.config.hf_bio_converted_from = {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": _sha256(checkpoint),
        "config": config_json.name,
        "converter": "hf_bio.aves.convert_aves",
    }
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=False, return_attention_mask=True
    )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        model.save_pretrained(tmp)  # safetensors is the default format
        extractor.save_pretrained(tmp)
        replace_dir(tmp, output_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return output_dir
