"""The Gradio app behind `hf-bio space` and the Hub Space in `spaces/hf-bio-demo/`.

A person uploads or records a call and picks a model; the app shows the top labels with their
probabilities, a spectrogram of the call and, for a recording longer than one window, the top label of
each window. It runs on a CPU, loads each model once, and works offline from a local model folder.

Which models the dropdown offers, first one being the default:
1. the `models` passed to `build_demo` (`hf-bio space --model DIR`),
2. `$HF_BIO_DEFAULT_MODEL`, then the comma-separated `$HF_BIO_SPACE_MODELS`,
3. the `models` list of `hf_bio_space.json` beside the app (written by `hf-bio push-space --model`),
4. otherwise `demo_output/model`, the model that `make demo` trains.

Audio is decoded by `hf_bio.audio.load_mono` (any format libsndfile or FFmpeg reads, any rate, mono or
stereo). Models load with `trust_remote_code=True`, so a model pushed with its own code files runs
whether or not the classes are registered locally.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hf_bio.atomic import atomic_write_text
from hf_bio.audio import AudioDecodeError, load_mono

DEFAULT_MODEL = "demo_output/model"
ENV_DEFAULT_MODEL = "HF_BIO_DEFAULT_MODEL"
ENV_MODELS = "HF_BIO_SPACE_MODELS"
ENV_MAX_SECONDS = "HF_BIO_SPACE_MAX_SECONDS"
SPACE_CONFIG_NAME = "hf_bio_space.json"
DEFAULT_MAX_SECONDS = 60.0
DEFAULT_WINDOW_SECONDS = 2.0
# Refused by Gradio before any decoding: a minute of 48 kHz stereo float WAV is ~23 MB.
MAX_FILE_SIZE = "100mb"
# Shorter than this, a base SSL model's convolutional front end (400-sample receptive field at 16 kHz)
# has nothing to look at.
MIN_SECONDS = 0.05
SILENT_WINDOW = "(silent: not classified)"
WINDOW_TABLE_HEADERS = ["start (s)", "end (s)", "top label", "probability"]
_BATCH_SIZE = 8


# ----------------------------------------------------------------------------------------------------
# Which models to offer


def resolve_models(models: list[str] | None = None, config_dir: str | Path | None = None) -> list[str]:
    """The dropdown's choices, default first, duplicates removed (see the module docstring for the order)."""
    ordered: list[str] = list(models or [])
    if os.environ.get(ENV_DEFAULT_MODEL):
        ordered.append(os.environ[ENV_DEFAULT_MODEL])
    ordered += [m.strip() for m in os.environ.get(ENV_MODELS, "").split(",") if m.strip()]
    if config_dir is not None:
        ordered += _models_from_space_config(Path(config_dir))
    if not ordered:
        ordered = [DEFAULT_MODEL]
    return list(dict.fromkeys(ordered))


def _models_from_space_config(config_dir: Path) -> list[str]:
    path = config_dir / SPACE_CONFIG_NAME
    if not path.is_file():
        return []
    try:
        models = json.loads(path.read_text())["models"]
    except (ValueError, KeyError) as error:
        raise ValueError(f"{path}: expected a JSON object with a 'models' list ({error})") from error
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"{path}: 'models' must be a list of model folders or Hub ids, got {models!r}")
    # A relative folder in the config is relative to the Space, not to wherever the app was started.
    return [str(config_dir / m) if (config_dir / m).is_dir() else m for m in models]


def resolve_max_seconds(max_seconds: float | None = None) -> float:
    """The longest recording accepted: the argument, else `$HF_BIO_SPACE_MAX_SECONDS`, else 60 s."""
    if max_seconds is None:
        raw = os.environ.get(ENV_MAX_SECONDS)
        if raw is None:
            return DEFAULT_MAX_SECONDS
        try:
            max_seconds = float(raw)
        except ValueError as error:
            raise ValueError(f"{ENV_MAX_SECONDS}={raw!r} is not a number of seconds") from error
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    return float(max_seconds)


# ----------------------------------------------------------------------------------------------------
# Loading each model once


@dataclass
class LoadedClassifier:
    """A model ready for inference, with the feature extractor that prepares its input."""

    name: str
    model: Any
    feature_extractor: Any
    sampling_rate: int
    id2label: dict[int, str]


_CACHE: dict[str, LoadedClassifier] = {}
_CACHE_LOCK = threading.Lock()


class ModelLoadError(RuntimeError):
    """A model folder or Hub id could not be loaded; the message names it and what to do."""


def load_classifier(name_or_path: str) -> LoadedClassifier:
    """Load (once per process) an audio-classification model from a folder or a Hub id."""
    local = Path(name_or_path).expanduser()
    key = str(local.resolve()) if local.exists() else name_or_path
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_uncached(name_or_path, local)
        return _CACHE[key]


def _register_hf_bio_model() -> None:
    """Import hf_bio's model module when this hf_bio has one, so that its classes are known to the Auto
    classes even for a model folder saved without its code files (`auto_map`)."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("hf_bio.modeling_bio") is not None:
            importlib.import_module("hf_bio.modeling_bio")
    except ImportError:
        pass  # a partial copy of hf_bio (e.g. in a Space): remote code is the way then


def _load_uncached(name_or_path: str, local: Path) -> LoadedClassifier:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    _register_hf_bio_model()
    if local.exists() and not (local / "config.json").is_file():
        raise ModelLoadError(f"{local}: not a model folder (no config.json)")
    source = str(local) if local.exists() else name_or_path
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(source, trust_remote_code=True)
        model = AutoModelForAudioClassification.from_pretrained(source, trust_remote_code=True)
    except Exception as error:
        where = (
            f"folder {local}"
            if local.exists()
            else f"{name_or_path!r} (no such folder at {local.resolve()}, and not loadable as a Hub id)"
        )
        raise ModelLoadError(
            f"cannot load the model {where}: {error}. Train one with `make demo` "
            f"(writes {DEFAULT_MODEL}) or name another with `hf-bio space --model DIR`."
        ) from error
    model.eval()
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    return LoadedClassifier(
        name=name_or_path,
        model=model,
        feature_extractor=feature_extractor,
        sampling_rate=int(getattr(feature_extractor, "sampling_rate", 16_000)),
        id2label=id2label,
    )


# ----------------------------------------------------------------------------------------------------
# Predicting


def window_bounds(num_samples: int, sampling_rate: int, window_seconds: float) -> list[tuple[int, int]]:
    """Cut `num_samples` into consecutive windows of `window_seconds`; every sample lands in one window.

    A remainder of half a window or more is a window of its own; a shorter one joins the last window,
    so no window is too short to classify.
    """
    window = max(1, int(round(window_seconds * sampling_rate)))
    if num_samples <= window:
        return [(0, num_samples)]
    count, remainder = divmod(num_samples, window)
    bounds = [(i * window, (i + 1) * window) for i in range(count)]
    if remainder >= window / 2:
        bounds.append((count * window, num_samples))
    elif remainder:
        bounds[-1] = (bounds[-1][0], num_samples)
    return bounds


def predict_windows(
    classifier: LoadedClassifier, samples: np.ndarray, window_seconds: float = DEFAULT_WINDOW_SECONDS
) -> tuple[np.ndarray, list[tuple[float, float, np.ndarray | None]]]:
    """Class probabilities of the whole recording and of each window.

    Windows of the same length are batched; windows are never padded together with longer ones,
    because zero padding changes a group-norm backbone's features. A window of digital silence (all
    zeros) is not classified (peak normalisation of silence gives NaN): its probabilities are None. The
    recording's probabilities are the other windows' probabilities averaged, weighted by window length.

    Returns:
        (probabilities [num_labels], [(start_s, end_s, probabilities or None), ...]).
    """
    import torch

    rate = classifier.sampling_rate
    bounds = window_bounds(len(samples), rate, window_seconds)
    by_length: dict[int, list[int]] = {}
    for index, (start, end) in enumerate(bounds):
        if np.any(samples[start:end]):
            by_length.setdefault(end - start, []).append(index)
    probabilities: list[np.ndarray | None] = [None] * len(bounds)
    with torch.inference_mode():
        for indices in by_length.values():
            for first in range(0, len(indices), _BATCH_SIZE):
                batch = indices[first : first + _BATCH_SIZE]
                arrays = [samples[bounds[i][0] : bounds[i][1]] for i in batch]
                inputs = classifier.feature_extractor(arrays, sampling_rate=rate, return_tensors="pt")
                logits = classifier.model(**inputs).logits
                for i, row in zip(batch, torch.softmax(logits.float(), dim=-1).numpy(), strict=True):
                    probabilities[i] = row
    heard = [i for i, p in enumerate(probabilities) if p is not None]
    if not heard:  # load_mono rejects an all-silent recording, so some window has sound
        raise ValueError("every window of the recording is silent")
    lengths = np.array([bounds[i][1] - bounds[i][0] for i in heard], dtype=np.float64)
    stacked = np.stack([probabilities[i] for i in heard])
    overall = (stacked * lengths[:, None]).sum(axis=0) / lengths.sum()
    windows = [(start / rate, end / rate, p) for (start, end), p in zip(bounds, probabilities, strict=True)]
    return overall, windows


def spectrogram_image(samples: np.ndarray, sampling_rate: int) -> np.ndarray:
    """A log-power spectrogram of `samples` as an RGB uint8 image (height, width, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # No pyplot: a Figure with its own canvas is safe to draw from Gradio's worker threads.
    figure = Figure(figsize=(8, 3), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    nfft = 512 if len(samples) >= 512 else max(16, 2 ** int(np.log2(max(len(samples), 2))))
    with np.errstate(divide="ignore"):  # digital silence has zero power: -inf dB, drawn as the floor
        spectrum, _, _, image = axes.specgram(
            samples, NFFT=nfft, Fs=sampling_rate, noverlap=nfft * 3 // 4, cmap="magma", scale="dB"
        )
    peak_db = 10 * np.log10(max(float(spectrum.max()), 1e-30))
    image.set_clim(peak_db - 90, peak_db)  # a 90 dB range: quiet calls stay visible, noise stays dark
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class RecordingResult(NamedTuple):
    """What the app shows for one recording."""

    labels: dict[str, float]  # every label with its probability (gr.Label shows the top k)
    spectrogram: np.ndarray  # RGB uint8 image
    windows: list[list[Any]]  # rows of WINDOW_TABLE_HEADERS
    warnings: list[str]  # what may make the labels less reliable (gr.Warning)
    infos: list[str]  # how the recording was handled (gr.Info)


def classify_recording(
    audio_path: str | None,
    model_name: str | None,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> RecordingResult:
    """Everything the app shows for one recording; bad input raises `ValueError` with a message for people."""
    if not audio_path:
        raise ValueError("No audio: upload a recording (WAV, MP3, FLAC or OGG) or record one, then press Classify.")
    if not model_name:
        raise ValueError("No model chosen: pick one in the Model list.")
    try:
        classifier = load_classifier(model_name)
    except ModelLoadError as error:
        raise ValueError(str(error)) from error
    shown_name = Path(audio_path).name
    try:
        samples, original_rate = load_mono(audio_path, target_rate=classifier.sampling_rate)
    except AudioDecodeError as error:
        reason = str(error).replace(str(audio_path), shown_name)
        raise ValueError(
            f"Cannot read {shown_name} as audio ({reason}). Upload a WAV, MP3, FLAC or OGG recording."
        ) from error
    duration = len(samples) / classifier.sampling_rate
    if duration > max_seconds:
        raise ValueError(
            f"{shown_name} is {duration:.1f} s long; this app accepts at most {max_seconds:g} s. "
            f"Trim the recording to the calls you want classified."
        )
    if duration < MIN_SECONDS:
        raise ValueError(
            f"{shown_name} is {duration * 1000:.0f} ms long; at least {MIN_SECONDS * 1000:.0f} ms is needed."
        )
    overall, windows = predict_windows(classifier, samples, window_seconds)
    labels = {classifier.id2label[i]: float(p) for i, p in enumerate(overall)}
    rows = [
        [round(start, 3), round(end, 3), classifier.id2label[int(p.argmax())], round(float(p.max()), 4)]
        if p is not None
        else [round(start, 3), round(end, 3), SILENT_WINDOW, None]
        for start, end, p in windows
    ]
    warnings, infos = [], []
    silent = sum(p is None for _, _, p in windows)
    if silent:
        warnings.append(
            f"{silent} of {len(windows)} windows are digital silence (all zeros): not classified, "
            f"and left out of the top labels."
        )
    if original_rate < classifier.sampling_rate:
        warnings.append(
            f"{shown_name} was recorded at {original_rate} Hz, below the model's {classifier.sampling_rate} Hz: "
            f"it has nothing above {original_rate // 2} Hz, so the model hears less than in training."
        )
    if len(rows) > 1:
        infos.append(
            f"Long recording: {len(rows)} windows of about {window_seconds:g} s; the top labels average them."
        )
    return RecordingResult(labels, spectrogram_image(samples, classifier.sampling_rate), rows, warnings, infos)


# ----------------------------------------------------------------------------------------------------
# The Gradio app


def build_demo(
    models: list[str] | None = None,
    *,
    config_dir: str | Path | None = None,
    max_seconds: float | None = None,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    top_k: int = 5,
    examples: list[str] | None = None,
) -> Any:
    """Build the Gradio Blocks app (not launched). Its API endpoint is `/classify(audio, model)`."""
    import gradio as gr

    choices = resolve_models(models, config_dir)
    limit = resolve_max_seconds(max_seconds)

    def classify(audio_path: str | None, model_name: str | None):
        try:
            result = classify_recording(audio_path, model_name, max_seconds=limit, window_seconds=window_seconds)
        except ValueError as error:
            raise gr.Error(str(error)) from error
        for message in result.warnings:
            gr.Warning(message)
        for message in result.infos:
            gr.Info(message)
        return result.labels, result.spectrogram, result.windows

    with gr.Blocks(title="hf_bio: what does the model hear?") as demo:
        gr.Markdown(
            "# What does the model hear?\n"
            "Upload or record an animal call (WAV, MP3, FLAC or OGG; any sample rate; mono or stereo), "
            "pick a model, and press **Classify**. The models are frozen self-supervised speech/audio "
            "backbones with a small head trained by hf_bio on one corpus: they "
            f"only know that corpus's labels. Recordings up to {limit:g} s; longer than "
            f"{window_seconds:g} s, each window is classified too."
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Animal call", elem_id="audio-in"
                )
                model = gr.Dropdown(
                    choices=[(_display_name(c), c) for c in choices], value=choices[0], label="Model", elem_id="model"
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[audio], label="Examples (CC0)")
            with gr.Column():
                labels = gr.Label(num_top_classes=top_k, label="Top labels", elem_id="top-labels")
                image = gr.Image(label="Spectrogram", type="numpy", elem_id="spectrogram", interactive=False)
                table = gr.Dataframe(
                    headers=WINDOW_TABLE_HEADERS,
                    datatype=["number", "number", "str", "number"],
                    label="Per window",
                    elem_id="windows",
                    interactive=False,
                )
        button.click(classify, inputs=[audio, model], outputs=[labels, image, table], api_name="classify")
    return demo


def _display_name(model: str) -> str:
    """A local folder below the working directory is shown relative to it (`model`, not `/home/user/app/model`)."""
    path = Path(model)
    if path.is_absolute() and path.is_dir():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return model
    return model


def launch(
    models: list[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    config_dir: str | Path | None = None,
    prevent_thread_lock: bool = False,
    **build_kwargs: Any,
) -> Any:
    """Build the app and serve it on `host:port` (Gradio picks a free port when `port` is None)."""
    demo = build_demo(models, config_dir=config_dir, **build_kwargs)
    demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        show_error=True,
        max_file_size=MAX_FILE_SIZE,
        # Server-side rendering starts a Node process; the plain client-side page needs nothing else.
        ssr_mode=False,
    )
    return demo


# ----------------------------------------------------------------------------------------------------
# Staging the Space for upload


def stage_space_folder(space_dir: str | Path, out_dir: str | Path, model: str | None = None) -> Path:
    """Write into `out_dir` exactly the folder to upload as the Space.

    The Space folder itself (`app.py`, `README.md`, `requirements.txt`, ...), plus a copy of the hf_bio
    package (it is not on PyPI, and the app imports `hf_bio.space` and `hf_bio.audio`), plus, with
    `model`, an `hf_bio_space.json` naming the default model (replacing any in `space_dir`): a Hub id as
    is, or a local model folder copied into `model/`.

    Raises:
        ValueError: `space_dir` has no `app.py` or no README with `sdk: gradio`; no `model` and no
            `hf_bio_space.json` in `space_dir`; `model` is neither a model folder nor a Hub id.
    """
    from huggingface_hub import SpaceCard

    space_dir, out_dir = Path(space_dir), Path(out_dir)
    if not (space_dir / "app.py").is_file():
        raise ValueError(f"{space_dir}: not a Space folder (no app.py)")
    readme = space_dir / "README.md"
    if not readme.is_file() or SpaceCard.load(readme).data.to_dict().get("sdk") != "gradio":
        raise ValueError(f"{readme}: a Gradio Space needs a README.md whose YAML header says `sdk: gradio`")
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: staging folder must be empty")
    if model is None and not (space_dir / SPACE_CONFIG_NAME).is_file():
        raise ValueError(
            f"{space_dir}: the Space needs a default model (it has no {DEFAULT_MODEL}): pass --model "
            f"REPO_OR_DIR, or put a {SPACE_CONFIG_NAME} with a 'models' list in {space_dir}"
        )
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "flagged")
    shutil.copytree(space_dir, out_dir, dirs_exist_ok=True, ignore=ignore)
    package = Path(__file__).resolve().parent
    shutil.copytree(package, out_dir / "hf_bio", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if model is not None:
        local = Path(model).expanduser()
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise ValueError(f"--model {model}: folder has no config.json; pass a model folder or a Hub id")
            shutil.copytree(local, out_dir / "model", ignore=ignore)
            default = "model"
        else:
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            try:
                validate_repo_id(model)
            except HFValidationError as error:
                raise ValueError(f"--model {model!r}: no such folder, and not a valid Hub id ({error})") from error
            default = model
            card = SpaceCard.load(out_dir / "README.md")
            card.data.models = list(dict.fromkeys([*(card.data.models or []), model]))
            card.save(out_dir / "README.md")
        atomic_write_text(out_dir / SPACE_CONFIG_NAME, json.dumps({"models": [default]}, indent=2) + "\n")
    return out_dir


