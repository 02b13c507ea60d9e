"""The commit a run is recorded against: DVC and DVCLive need one."""

from __future__ import annotations

import subprocess
from pathlib import Path

from transfer.runtime.errors import UserError


def require_commit() -> None:
    """Raise UserError in a git repository that has no commit yet (outside git, or without
    git, nothing to check): DVC experiments and DVCLive record runs against a commit, and
    DVCLive stops there with a traceback."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True)
        head = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"],
                              capture_output=True, text=True)
    except FileNotFoundError:
        return
    if inside.stdout.strip() == "true" and head.returncode != 0:
        raise UserError(f"{Path.cwd()} is a git repository with no commit yet; commit the "
                        f"project first (git add -A && git commit -m 'project'): DVC and "
                        f"DVCLive record each run against a commit")
