"""The Space: its pieces on their own, then the app served on 127.0.0.1 through gradio_client and a real
headless chromium.

The served app gets the tiny stand-in classifier of `tests/helpers_models.py` and real CC0 recordings
from `shared/data/cc0_animal_sounds/` (MP3, 44.1/48 kHz, mono and stereo).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from hf_bio.space import (
    DEFAULT_MODEL,
    ENV_DEFAULT_MODEL,
    ENV_MAX_SECONDS,
    ENV_MODELS,
    SPACE_CONFIG_NAME,
    classify_recording,
    resolve_max_seconds,
    resolve_models,
    window_bounds,
)
from tests.helpers_models import make_tiny_audio_classifier

LABELS = ["bark", "meow", "moo"]
MAX_SECONDS = 7.0  # owl.mp3 (8.5 s) is too long, duck.mp3 (6.0 s) is not
REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"
# Debian's packages `chromium` and `chromium-driver` (scripts/bootstrap.sh --test installs them).
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_audio_classifier(tmp_path_factory.mktemp("space") / "tiny-model", LABELS)


@pytest.fixture(scope="module")
def recordings(shared_dir: str) -> Path:
    folder = Path(shared_dir) / "data" / "cc0_animal_sounds"
    assert (folder / "duck.mp3").is_file(), f"{folder}: the CC0 recordings are missing"
    return folder


@pytest.fixture
def garbage_wav(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all\n" * 200)
    return path


# ----------------------------------------------------------------------------------------------------
# Pieces, without a server


def test_windows_cover_every_sample_once() -> None:
    assert window_bounds(100, 100, 2.0) == [(0, 100)]
    assert window_bounds(450, 100, 2.0) == [(0, 200), (200, 450)]  # a short tail joins the last window
    assert window_bounds(500, 100, 2.0) == [(0, 200), (200, 400), (400, 500)]  # half a window stands alone
    for n in (1, 199, 200, 201, 299, 300, 1234):
        bounds = window_bounds(n, 100, 2.0)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_model_choices_and_limits_come_from_args_env_and_space_config(tmp_path: Path, monkeypatch) -> None:
    for name in (ENV_DEFAULT_MODEL, ENV_MODELS, ENV_MAX_SECONDS):
        monkeypatch.delenv(name, raising=False)
    assert resolve_models() == [DEFAULT_MODEL]
    (tmp_path / "model").mkdir()
    (tmp_path / SPACE_CONFIG_NAME).write_text('{"models": ["model", "someone/hub-model"]}')
    monkeypatch.setenv(ENV_DEFAULT_MODEL, "env/default")
    monkeypatch.setenv(ENV_MODELS, "a/b, c/d")
    assert resolve_models(["cli/model"], tmp_path) == [
        "cli/model", "env/default", "a/b", "c/d", str(tmp_path / "model"), "someone/hub-model"
    ]
    (tmp_path / SPACE_CONFIG_NAME).write_text('{"models": "not a list"}')
    with pytest.raises(ValueError, match="must be a list"):
        resolve_models(config_dir=tmp_path)
    assert resolve_max_seconds() == 60.0
    monkeypatch.setenv(ENV_MAX_SECONDS, "12.5")
    assert resolve_max_seconds() == 12.5
    monkeypatch.setenv(ENV_MAX_SECONDS, "lots")
    with pytest.raises(ValueError, match=ENV_MAX_SECONDS):
        resolve_max_seconds()


def test_classify_recording_any_format_rate_and_channels(tiny_model: Path, tmp_path: Path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((22_050 * 3, 2)).astype(np.float32) * 0.1  # 3 s, stereo, 22.05 kHz
    for name in ("call.ogg", "call.flac", "call.wav"):
        sf.write(tmp_path / name, stereo, 22_050)
        labels, image, rows, warnings, infos = classify_recording(
            str(tmp_path / name), str(tiny_model), window_seconds=2.0
        )
        assert set(labels) == set(LABELS)
        assert sum(labels.values()) == pytest.approx(1.0, abs=1e-5)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        assert [row[:2] for row in rows] == [[0.0, 2.0], [2.0, 3.0]]  # a 1 s tail is half a window: its own
        assert rows[0][2] in LABELS and 0 < rows[0][3] <= 1
        assert warnings == []  # 22.05 kHz is above 16 kHz: nothing lost
        assert infos == ["Long recording: 2 windows of about 2 s; the top labels average them."]
    sf.write(tmp_path / "low.wav", stereo[:8000], 8_000)  # 1 s at 8 kHz: upsampled, and said so
    labels, image, rows, warnings, infos = classify_recording(str(tmp_path / "low.wav"), str(tiny_model))
    assert sum(labels.values()) == pytest.approx(1.0, abs=1e-5) and len(rows) == 1 and infos == []
    assert warnings == [
        "low.wav was recorded at 8000 Hz, below the model's 16000 Hz: it has nothing above 4000 Hz, "
        "so the model hears less than in training."
    ]


def test_a_silent_window_is_shown_and_left_out_not_classified(tiny_model: Path, tmp_path: Path) -> None:
    import soundfile as sf

    from hf_bio.space import SILENT_WINDOW

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(32_000) / 16_000).astype(np.float32)
    sf.write(tmp_path / "gap.wav", np.concatenate([tone, np.zeros(32_000, np.float32), tone]), 16_000)
    labels, _, rows, warnings, _ = classify_recording(str(tmp_path / "gap.wav"), str(tiny_model))
    assert rows[1] == [2.0, 4.0, SILENT_WINDOW, None]
    assert rows[0][2] in LABELS and rows[2][2] in LABELS
    assert sum(labels.values()) == pytest.approx(1.0, abs=1e-5)
    # The two sounding windows are the same tone: the recording's labels are theirs, silence adds nothing.
    assert max(labels.values()) == pytest.approx(rows[0][3], abs=1e-3)
    assert warnings == ["1 of 3 windows are digital silence (all zeros): not classified, and left out of the top labels."]


def test_classify_recording_bad_inputs_say_what_to_do(tiny_model: Path, tmp_path: Path, garbage_wav: Path) -> None:
    with pytest.raises(ValueError, match="No audio"):
        classify_recording(None, str(tiny_model))
    with pytest.raises(ValueError, match="Cannot read garbage.wav"):
        classify_recording(str(garbage_wav), str(tiny_model))
    with pytest.raises(ValueError, match="cannot load the model .*make demo"):
        classify_recording(str(garbage_wav), str(tmp_path / "no-model-here"))
    import soundfile as sf

    sf.write(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    with pytest.raises(ValueError, match="silent"):
        classify_recording(str(tmp_path / "silent.wav"), str(tiny_model))
    sf.write(tmp_path / "long.wav", np.ones(16_000 * 3, dtype=np.float32) * 0.1, 16_000)
    with pytest.raises(ValueError, match="3.0 s long; this app accepts at most 2 s"):
        classify_recording(str(tmp_path / "long.wav"), str(tiny_model), max_seconds=2.0)


# ----------------------------------------------------------------------------------------------------
# The served app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_app(tiny_model: Path):
    """The app on 127.0.0.1 in this process's background threads; closed after the module's tests."""
    from hf_bio.space import launch

    port = _free_port()
    demo = launch([str(tiny_model)], host="127.0.0.1", port=port, prevent_thread_lock=True, max_seconds=MAX_SECONDS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(served_app: str):
    from gradio_client import Client

    return Client(served_app, verbose=False)


@pytest.mark.slow
def test_client_real_recording_gets_real_predictions(client, tiny_model: Path, recordings: Path) -> None:
    from gradio_client import handle_file
    from PIL import Image

    # duck.mp3: stereo, 44.1 kHz, 6.0 s -> three 2 s windows.
    labels, image_path, table = client.predict(
        handle_file(str(recordings / "duck.mp3")), str(tiny_model), api_name="/classify"
    )
    confidences = {c["label"]: c["confidence"] for c in labels["confidences"]}
    assert set(confidences) == set(LABELS)
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert labels["label"] == max(confidences, key=confidences.get)
    with Image.open(image_path) as picture:
        width, height = picture.size
        assert width >= 400 and height >= 150
        assert len(np.unique(np.asarray(picture.convert("L")))) > 20  # a picture, not a blank
    assert table["headers"] == ["start (s)", "end (s)", "top label", "probability"]
    assert [row[:2] for row in table["data"]] == [[0.0, 2.0], [2.0, 4.0], [4.0, pytest.approx(6.0, abs=0.02)]]
    assert all(row[2] in LABELS and 0 < row[3] <= 1 for row in table["data"])


@pytest.mark.slow
def test_client_bad_uploads_get_clear_errors(client, tiny_model: Path, recordings: Path, garbage_wav: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="No audio: upload a recording"):
        client.predict(None, str(tiny_model), api_name="/classify")
    with pytest.raises(AppError, match=r"owl.mp3 is 8.5 s long; this app accepts at most 7 s"):
        client.predict(handle_file(str(recordings / "owl.mp3")), str(tiny_model), api_name="/classify")
    with pytest.raises(AppError, match=r"Cannot read garbage.wav as audio .*Upload a WAV, MP3, FLAC or OGG"):
        client.predict(handle_file(str(garbage_wav)), str(tiny_model), api_name="/classify")


@pytest.mark.slow
def test_browser_uploads_a_call_and_sees_labels(served_app: str, recordings: Path, tmp_path: Path) -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromedriver on PATH: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1100", f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(served_app)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#audio-in input[type=file]")))
        upload.send_keys(str(recordings / "cat.mp3"))
        # The upload finishes when the player replaces the drop zone; classify only then.
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#audio-in audio")))
        driver.find_element(By.CSS_SELECTOR, "#classify").click()
        wait.until(lambda d: any(name in d.find_element(By.ID, "top-labels").text for name in LABELS))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#spectrogram img")))
        time.sleep(0.5)  # let the image and table paint before the screenshot
        label_text = driver.find_element(By.ID, "top-labels").text
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "space_screenshot.png"
        assert driver.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")
    finally:
        driver.quit()
    assert any(name in label_text for name in LABELS), label_text
    assert "%" in label_text  # confidences are shown
    assert screenshot.stat().st_size > 10_000


@pytest.mark.slow
def test_staged_space_app_builds_from_its_own_folder(tiny_model: Path, tmp_path: Path) -> None:
    """The uploaded Space folder alone (app.py + its copy of hf_bio) builds the app with its default model."""
    import subprocess
    import sys

    from hf_bio.space import stage_space_folder

    staged = stage_space_folder(REPO_ROOT / "spaces" / "hf-bio-demo", tmp_path / "space", model=str(tiny_model))
    script = (
        "import app, hf_bio.space as s; "
        "print(s.__file__); print(s.resolve_models(config_dir=app.HERE)[0]); print(len(app.EXAMPLES))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_BIO_")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=staged, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module_file, default_model, examples = done.stdout.strip().splitlines()[-3:]
    assert Path(module_file) == staged / "hf_bio" / "space.py"
    assert Path(default_model) == staged / "model"
    assert int(examples) == 2


def test_space_command_refuses_a_bad_limit_before_serving(capsys) -> None:
    from hf_bio.cli import main

    assert main(["space", "--max-seconds", "0"]) == 2
    assert "max_seconds must be positive" in capsys.readouterr().err
