"""Uploading a prepared folder (dataset, model or Space) to the Hub, or writing it out for a dry run.

Every push in hf_bio goes through `push_folder`, so the token handling and the dry run are the same for
datasets, models and Spaces: the token comes from huggingface_hub's standard places (HF_TOKEN, the
cached login) and is never printed or written anywhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_TYPES = ("dataset", "model", "space")


def push_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: str,
    *,
    dry_run_dir: str | Path | None = None,
    private: bool = False,
    commit_message: str = "Upload with hf-bio",
    space_sdk: str | None = None,
) -> str:
    """Upload `folder` as the repo `repo_id`, or, with `dry_run_dir`, copy exactly those files there.

    Returns the URL of the uploaded repo, or the dry-run folder's path.

    Raises:
        ValueError: unknown `repo_type`, a malformed `repo_id`, or a missing folder.
    """
    folder = Path(folder)
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder to upload")
    if dry_run_dir is not None:
        dry_run_dir = Path(dry_run_dir)
        if dry_run_dir.exists():
            shutil.rmtree(dry_run_dir)
        shutil.copytree(folder, dry_run_dir)
        return str(dry_run_dir)

    from huggingface_hub import HfApi

    api = HfApi()  # reads the token from HF_TOKEN or the cached `hf auth login`
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    return f"https://huggingface.co/{prefix}{repo_id}"
