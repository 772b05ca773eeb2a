"""hf_bio: classify animal calls with frozen self-supervised speech and audio models.

Importing the package is cheap: submodules (and torch/transformers) load on first use.
"""

__version__ = "0.1.0"
