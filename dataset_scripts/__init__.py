"""Preparation code for each corpus: `prepare_<corpus>(raw_dir, output_dir, ...)` writes a dataset folder.

Not loading scripts (`datasets` >= 4 no longer runs those): each function reads the corpus in its
original raw layout and writes a self-contained Hugging Face dataset (Parquet + Arrow, audio
embedded) that `datasets.load_dataset(folder)` and `datasets.load_from_disk(folder)` read.
"""

from dataset_scripts.abzaliev import prepare_abzaliev
from dataset_scripts.demo import make_demo_corpus, prepare_demo
from dataset_scripts.imv import prepare_imv
from dataset_scripts.watkins import prepare_watkins

PREPARERS = {"watkins": prepare_watkins, "imv": prepare_imv, "abzaliev": prepare_abzaliev, "demo": prepare_demo}

__all__ = ["PREPARERS", "make_demo_corpus", "prepare_abzaliev", "prepare_demo", "prepare_imv", "prepare_watkins"]
