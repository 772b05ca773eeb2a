"""The Space's app: evaluate's standard widget around the UAR module in this folder."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).with_name("uar.py")))
launch_gradio_widget(module)
