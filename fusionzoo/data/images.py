"""Loading split rows for training/encoding: a torch Dataset of (image, text, label, metadata).

:class:`ImageTextDataset` decodes each JPEG lazily. When the transform declares the size it resizes to
(``transform.target_size`` = int or (w, h); torchvision ``Resize``/``Compose`` expose ``size``), PIL's
``draft()`` lets libjpeg decode directly at a reduced scale (1/2, 1/4, 1/8) that is still at least
that size, which is several times faster for large photos.

Unreadable, corrupt or missing images never crash a worker with policy ``skip``: the item comes back
with ``ok=False`` and ``image=None``; :func:`collate_items` drops such items and
:class:`BadImageReport` counts them and warns with the first item ids (``fail`` raises naming the file).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from fusionzoo.data.base import BAD_IMAGE_POLICIES, DataError, DataWarning

_SHOW = 5


class BadImageError(DataError):
    """An image could not be read under policy ``fail``; the message names the file and item id."""


def target_size_of(transform: Any) -> tuple[int, int] | None:
    """The (width, height) lower bound a transform resizes to, if it declares one."""
    for candidate in (transform, *getattr(transform, "transforms", ())[:1]):
        for attr in ("target_size", "size"):
            size = getattr(candidate, attr, None)
            if isinstance(size, int):
                return size, size
            if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, int) for v in size):
                # target_size is (width, height) like PIL; torchvision's size is (height, width)
                return (int(size[1]), int(size[0])) if attr == "size" else (int(size[0]), int(size[1]))
            if isinstance(size, Sequence) and len(size) == 1 and isinstance(size[0], int):
                return size[0], size[0]
    return None


def read_image(path: str, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, using JPEG draft mode when ``draft_size`` is smaller."""
    with Image.open(path) as image:
        if draft_size is not None and image.format == "JPEG":
            width, height = image.size
            if draft_size[0] < width and draft_size[1] < height:
                image.draft("RGB", draft_size)
        image.load()
        return image.convert("RGB")


@dataclass
class BadImageReport:
    """Counts unreadable images and turns them into one warning (``skip``) or an error (``fail``)."""

    policy: str = "skip"
    context: str = ""
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (item_id, path, reason)

    def __post_init__(self) -> None:
        if self.policy not in BAD_IMAGE_POLICIES:
            raise DataError(
                f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {self.policy!r}"
            )

    def add(self, item_id: str, path: str, reason: str = "unreadable") -> None:
        if self.policy == "fail":
            raise BadImageError(
                f"{self.context + ': ' if self.context else ''}cannot read image {path} of item_id {item_id} "
                f"({reason}); fix or remove the file, or use --on-bad-image skip"
            )
        self.bad.append((str(item_id), str(path), reason))

    def add_items(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if not item["ok"]:
                self.add(item["item_id"], item.get("path", ""), item.get("error", "unreadable"))

    @property
    def count(self) -> int:
        return len(self.bad)

    def message(self) -> str:
        ids = [b[0] for b in self.bad]
        more = f", … ({len(ids) - _SHOW} more)" if len(ids) > _SHOW else ""
        where = f"{self.context}: " if self.context else ""
        return f"{where}{len(ids)} item(s) skipped because their image is unreadable (item_ids {', '.join(ids[:_SHOW])}{more})"

    def warn(self) -> None:
        """Emit the summary warning if anything was skipped."""
        if self.bad:
            warnings.warn(self.message(), DataWarning, stacklevel=2)


class ImageTextDataset(Dataset):
    """Rows of a split frame (:data:`fusionzoo.data.base.COLUMNS`) as training items.

    Each item is ``{"index", "image", "text", "label", "ok", "item_id", "geo", "label_source",
    "is_human"}``; ``image`` is ``transform(PIL RGB image)`` (the PIL image without a transform) or
    ``None`` when unreadable (``ok=False``, ``error`` says why). With ``on_bad_image="fail"`` an
    unreadable image raises :class:`BadImageError` naming the file.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        transform: Callable[[Image.Image], Any] | None = None,
        on_bad_image: str = "skip",
        draft: bool = True,
    ) -> None:
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise DataError(
                f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {on_bad_image!r}"
            )
        missing = [c for c in ("item_id", "image_path", "text", "label") if c not in frame.columns]
        if missing:
            raise DataError(
                f"ImageTextDataset needs columns item_id, image_path, text, label; missing {', '.join(missing)}"
            )
        self.frame = frame.reset_index(drop=True)
        self.transform = transform
        self.on_bad_image = on_bad_image
        self.draft_size = target_size_of(transform) if draft and transform is not None else None
        self._paths = self.frame["image_path"].astype(str).tolist()
        self._texts = self.frame["text"].astype(str).tolist()
        self._labels = self.frame["label"].astype(int).tolist()
        self._ids = self.frame["item_id"].astype(str).tolist()
        self._meta = {
            c: self.frame[c].tolist() for c in ("geo", "label_source", "is_human") if c in self.frame
        }

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self._paths[index]
        item: dict[str, Any] = {
            "index": int(index),
            "image": None,
            "text": self._texts[index],
            "label": self._labels[index],
            "ok": True,
            "item_id": self._ids[index],
            "path": path,
            **{k: v[index] for k, v in self._meta.items()},
        }
        try:
            image = read_image(path, self.draft_size)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            reason = "file not found" if not os.path.exists(path) else f"{type(exc).__name__}: {exc}"
            if self.on_bad_image == "fail":
                raise BadImageError(
                    f"cannot read image {path} of item_id {self._ids[index]} ({reason}); fix or remove the file, "
                    "or use --on-bad-image skip"
                ) from exc
            item.update(ok=False, error=reason)
            return item
        item["image"] = self.transform(image) if self.transform is not None else image
        return item


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items, dropping unreadable ones; tensors are stacked, everything else becomes a list.

    The returned dict has the same keys plus ``"bad"``: the dropped items (item_id, path, error), for a
    :class:`BadImageReport`.
    """
    import torch

    good = [item for item in items if item["ok"]]
    batch: dict[str, Any] = {"bad": [item for item in items if not item["ok"]]}
    keys = [k for k in items[0] if k not in ("ok", "error")] if items else []
    for key in keys:
        values = [item[key] for item in good]
        if key in ("index", "label"):
            batch[key] = torch.tensor(values, dtype=torch.long)
        elif values and isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch


def unreadable_images(paths: Iterable[str]) -> dict[str, str]:
    """``{path: why}`` for each file PIL cannot open as an image: missing, empty, not an image, a broken
    header (and, for a PNG, a bad chunk checksum). Only headers are read; nothing is decoded, so a JPEG
    truncated after its header is found when it is decoded."""
    out: dict[str, str] = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except FileNotFoundError:
            out[path] = "file not found"
        except UnidentifiedImageError:
            out[path] = "not an image file PIL can read"
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            out[path] = f"{type(exc).__name__}: {str(exc).replace(repr(str(path)), 'it')}"
    return out


def check_image_files(frame: pd.DataFrame, *, deep: bool = False) -> pd.DataFrame:
    """Problems with the image files of ``frame``: columns item_id, image_path, problem.

    Checks existence, non-zero size and the JPEG/PNG signature; ``deep`` also decodes every image.
    """
    problems = []
    seen: dict[str, str | None] = {}
    for item_id, path in zip(frame["item_id"], frame["image_path"], strict=True):
        if path not in seen:
            seen[path] = _file_problem(path, deep)
        if seen[path] is not None:
            problems.append((item_id, path, seen[path]))
    return pd.DataFrame(problems, columns=["item_id", "image_path", "problem"])


def _file_problem(path: str, deep: bool) -> str | None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "empty file"
    if not (head.startswith(b"\xff\xd8") or head.startswith(b"\x89PNG")):
        return "not a JPEG/PNG file"
    if deep:
        try:
            read_image(path)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            return f"corrupt ({type(exc).__name__}: {exc})"
    return None
