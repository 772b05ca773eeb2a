"""The hf_bio Space: upload or record an animal call, pick a model, see what it hears.

On the Hub this folder is uploaded by `hf-bio push-space`, which adds a copy of the hf_bio package
(not on PyPI) beside this file and, with `--model`, an `hf_bio_space.json` naming the default model.
Locally, `hf-bio space --model DIR` serves the same app.
"""

from pathlib import Path

from hf_bio.space import MAX_FILE_SIZE, build_demo

HERE = Path(__file__).resolve().parent
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.mp3"))

demo = build_demo(config_dir=HERE, examples=EXAMPLES)

if __name__ == "__main__":
    demo.launch(ssr_mode=False, max_file_size=MAX_FILE_SIZE)
