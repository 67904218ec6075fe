"""Saving and loading the course's ``.pt`` files safely: checkpoints (`utils.training.fit`) and scene caches.

Introduced in Chapter 1 (01b). Three promises, kept here once for every file the course writes with torch:

- **atomic**: `atomic_save` writes a temporary file beside the target and renames it over the target, so an
  interrupted or disk-full save never leaves half a file where a later run would read it;
- **verified**: the file stores a SHA-256 of its content (every tensor's bytes, dtype and shape, and every
  plain value), and `verified_load` recomputes it: a truncated, corrupt or hand-edited file is reported by
  path and treated as absent, so the caller rebuilds it instead of reusing it;
- **safe to share**: only tensors and plain data (numbers, strings, lists, dicts) are stored, and loading
  uses ``torch.load(..., weights_only=True)``, which refuses pickled code — a checkpoint from someone else
  cannot run anything.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import torch

FORMAT = "deep-vision-lab/1"


def warn(message: str) -> None:
    """One line on stderr: something was skipped or not kept, and the run goes on."""
    print(f"warning: {message}", file=sys.stderr)


def _feed(digest, value) -> None:
    if torch.is_tensor(value):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {tensor.dtype} {tuple(value.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        digest.update(f"{type(value).__name__} {value!r};".encode())
    else:
        raise TypeError(f"only tensors and plain data can be saved, not {type(value).__name__}: "
                        "store its fields as a dict of numbers, strings and tensors")


def checksum(content) -> str:
    """SHA-256 of ``content`` (nested dicts, lists and tuples of tensors and plain values), independent of device."""
    digest = hashlib.sha256()
    _feed(digest, content)
    return digest.hexdigest()


def atomic_save(content, path: Path) -> bool:
    """Write ``content`` (tensors and plain data) to ``path`` with its checksum, atomically.

    Returns True when written. A failed write (read-only folder, full disk) leaves ``path`` as it was, removes
    the temporary file, warns naming the path, and returns False: the caller keeps its result in memory.
    """
    record = {"format": FORMAT, "sha256": checksum(content), "content": content}
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            torch.save(record, file)
        os.replace(temporary, path)
        return True
    except (OSError, RuntimeError) as error:  # torch reports a failed write as RuntimeError
        warn(f"could not write {path} ({error}); the result is kept in memory only: "
             "free some disk space or make the folder writable to keep it")
        return False
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def verified_load(path: Path):
    """The content `atomic_save` wrote to ``path`` (tensors on the CPU), or None when there is no such file or it
    is damaged — then a one-line warning names it, and the caller rebuilds it (which overwrites it)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            problem = "not written by this course's atomic_save (an older format or a foreign file)"
        elif record["sha256"] != checksum(record["content"]):
            problem = "checksum mismatch: its bytes changed after it was written"
        else:
            return record["content"]
    except Exception as error:  # noqa: BLE001 — a truncated zip, flipped bytes, a pickle of code: all damage
        problem = f"unreadable: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    warn(f"ignoring {path}: {problem}; it will be rebuilt (delete it to silence this)")
    return None
