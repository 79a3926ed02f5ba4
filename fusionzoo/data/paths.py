"""Where datasets live: ``--data-dir``, then ``$FUSIONZOO_DATA``, then the user cache directory.

Nothing is ever written inside the installed package directory; :func:`resolve_data_dir` refuses a
data directory that lies inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fusionzoo.data.base import DataError

DATA_ENV = "FUSIONZOO_DATA"
APP_NAME = "fusionzoo"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """The per-user cache directory (e.g. ``~/.cache/fusionzoo`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None, *, create: bool = False) -> Path:
    """``data_dir`` if given, else ``$FUSIONZOO_DATA`` if set and non-empty, else the user cache dir."""
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir)
    elif os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV])
    else:
        path = default_data_dir()
    path = path.expanduser().resolve()
    if path == PACKAGE_DIR or PACKAGE_DIR in path.parents:
        raise DataError(
            f"data directory {path} is inside the fusionzoo package ({PACKAGE_DIR}); "
            f"choose another one with --data-dir or ${DATA_ENV}"
        )
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def glami_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``fusionzoo data glami1m --download`` puts GLAMI-1M: ``<data dir>/glami1m``."""
    return resolve_data_dir(data_dir) / "glami1m"


def downloads_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    return resolve_data_dir(data_dir) / "downloads"


def synth_base_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    return resolve_data_dir(data_dir) / "synth"


def labelmaps_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fallback store for label maps when the dataset folder is read-only."""
    return resolve_data_dir(data_dir) / "labelmaps"
