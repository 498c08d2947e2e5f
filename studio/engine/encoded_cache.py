"""The cache of encoded datasets: a re-run on the same data starts training in seconds.

An entry is a folder under `<cache root>/encoded/` (the cache root is $FTSTUDIO_CACHE_DIR or
~/.cache/ftstudio) holding the encoded train (and eval) examples as Arrow files, memory-mapped
when used, and `entry.json` with the data report and the encoding statistics.

The key is a hash of everything that changes the encoded examples:
- the content of every input file (data.path, eval_path, replay_path, every data.mix path):
  its size and a BLAKE2 hash of all its bytes (a folder: of every file in it). The whole file
  is hashed, not a sample: it costs about a second per GB, small beside encoding it, and an
  edit that keeps the size and the modification time cannot slip through;
- every data setting (format, max_length, cleaning, split, mix weights, system prompt, ...),
  the training type and the seed (the eval split and the mix depend on it);
- the tokenizer (its full serialized vocabulary, merges, normalizer and added tokens), its
  chat template and special tokens, and whether the loss is on the assistant only;
- the version of the encoding code (`ENCODING_VERSION`).
A hub dataset has no local content to hash, so it is never cached.

An entry is written into a hidden staging folder and renamed into place only once complete:
an interrupted preparation (Ctrl-C, `x`, a crash, a kill) leaves at most a staging folder,
which is never read and is removed by `ftstudio data cache --clear`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.formatting import format_bytes

ENCODING_VERSION = 1  # raise when the encoding of a record changes
ENTRY_FILE = "entry.json"
TRAIN_FILE = "train.arrow"
EVAL_FILE = "eval.arrow"
STAGING_PREFIX = ".staging-"
OWNER_FILE = "owner.json"  # in a staging folder: the pid and host writing it
_CHUNK = 1 << 20


def cache_folder() -> Path:
    from studio.user_settings import cache_root

    return cache_root() / "encoded"


def _hash_text(*parts: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def file_content_key(path: Path) -> str:
    """Size and BLAKE2 hash of a file's bytes; of every file's, for a folder."""
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    total = 0
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode() + b"\0")
        with file.open("rb") as source:
            while block := source.read(_CHUNK):
                digest.update(block)
                total += len(block)
    return f"{total}:{digest.hexdigest()}"


def _local_path(path: str, base_dir: Path | None) -> Path | None:
    local = Path(path).expanduser()
    if not local.is_absolute() and base_dir is not None:
        local = base_dir / local
    return local if local.exists() else None


def data_key(config: Any, base_dir: Path | None) -> str | None:
    """The key of a run's data before anything is read; None when it cannot be cached."""
    settings = config.data
    paths = [settings.path, settings.eval_path, settings.replay_path]
    paths += [entry.path for entry in settings.mix]
    contents: dict[str, str] = {}
    for path in filter(None, paths):
        local = _local_path(path, base_dir)
        if local is None:
            return None  # a hub dataset: nothing local to hash
        contents[path] = file_content_key(local)
    described = {
        "training_type": config.training_type,
        "seed": config.training.seed,
        "data": settings.model_dump(mode="json"),
        "files": contents,
        "version": ENCODING_VERSION,
    }
    return _hash_text(json.dumps(described, sort_keys=True))


def tokenizer_key(tokenizer: Any) -> str:
    """What of a tokenizer decides its ids: its serialized model, template, special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Without its truncation and padding: transformers sets them on the backend at each
        # call and they persist, so one tokenizer would have a key per call it made last (a
        # miss for nothing); the encoding never truncates or pads through them.
        settings = json.loads(backend.to_str())
        settings.pop("truncation", None)
        settings.pop("padding", None)
        serialized = json.dumps(settings)
    else:  # a slow tokenizer: its vocabulary as the library gives it
        serialized = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    template = getattr(tokenizer, "chat_template", None)
    special = {
        name: str(getattr(tokenizer, name, None))
        for name in ("bos_token", "eos_token", "pad_token", "unk_token")
    }
    return _hash_text(
        type(tokenizer).__name__,
        serialized,
        json.dumps(template, sort_keys=True),
        json.dumps(special, sort_keys=True),
        json.dumps(sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))),
    )


def entry_key(data: str, tokenizer: str, assistant_only: bool) -> str:
    return _hash_text(data, tokenizer, f"assistant_only={assistant_only}")


@dataclass
class CacheEntry:
    path: Path
    meta: dict[str, Any]
    size_bytes: int

    @property
    def key(self) -> str:
        return self.path.name

    def train_dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_file(str(self.path / TRAIN_FILE))

    def eval_dataset(self) -> Any:
        from datasets import Dataset

        path = self.path / EVAL_FILE
        return Dataset.from_file(str(path)) if path.exists() else None


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_entry(path: Path) -> CacheEntry | None:
    """The entry in `path`, or None if it is not a complete one."""
    try:
        meta = json.loads((path / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (path / TRAIN_FILE).is_file() or meta.get("key") != path.name:
        return None
    return CacheEntry(path, meta, _folder_size(path))


def find_entry(key: str, root: Path | None = None) -> CacheEntry | None:
    return read_entry((root or cache_folder()) / key)


def entries(root: Path | None = None) -> list[CacheEntry]:
    """Every complete entry, the most recently used first."""
    folder = root or cache_folder()
    if not folder.is_dir():
        return []
    found = [read_entry(path) for path in folder.iterdir() if not path.name.startswith(".")]
    complete = [entry for entry in found if entry is not None]
    return sorted(complete, key=lambda entry: -float(entry.meta.get("used", 0)))


def unfinished(root: Path | None = None) -> list[Path]:
    """Staging folders of preparations that never finished (or are running now)."""
    folder = root or cache_folder()
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.name.startswith(STAGING_PREFIX))


def entry_for_data(data: str, root: Path | None = None) -> CacheEntry | None:
    """The most recent entry made from the same data and settings (any tokenizer)."""
    for entry in entries(root):
        if entry.meta.get("data_key") == data:
            return entry
    return None


def start_staging(key: str, root: Path | None = None) -> Path:
    folder = root or cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{key}-", dir=folder))
    # Who is writing it, so `--clear` leaves a preparation that is running now alone.
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    (staging / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    return staging


def being_written(staging: Path) -> bool:
    """True while the process that started this staging folder (on this host) is alive."""
    try:
        owner = json.loads((staging / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no readable owner: a preparation that died before writing it
    if host != socket.gethostname():
        return True  # another machine sharing the folder: its process cannot be checked here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def commit(staging: Path, key: str, meta: dict[str, Any]) -> CacheEntry:
    """Make a complete staging folder the entry `key`: entry.json last, then one rename."""
    meta = {**meta, "key": key, "created": time.time(), "used": time.time()}
    (staging / ENTRY_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    target = staging.parent / key
    try:
        os.rename(staging, target)
    except OSError:
        # Another run finished the same entry first; its files are the same.
        shutil.rmtree(staging, ignore_errors=True)
    entry = read_entry(target)
    if entry is None:
        raise OSError(f"the encoded-dataset cache entry {target} could not be written")
    return entry


def mark_used(entry: CacheEntry) -> None:
    """Remember when an entry was last used (the listing shows the recent ones first)."""
    meta = {**entry.meta, "used": time.time()}
    temporary = entry.path / f".{ENTRY_FILE}.{os.getpid()}"
    try:
        temporary.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(temporary, entry.path / ENTRY_FILE)
    except OSError:
        pass  # a read-only cache still serves; the order of the listing matters little


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def clear(root: Path | None = None) -> tuple[int, int, int]:
    """Remove every entry and every staging folder no live process is writing; (folders
    removed, bytes freed, preparations left running)."""
    folder = root or cache_folder()
    if not folder.is_dir():
        return 0, 0, 0
    removed = freed = running = 0
    for path in folder.iterdir():
        if not path.is_dir():
            continue
        if path.name.startswith(STAGING_PREFIX) and being_written(path):
            running += 1
            continue
        freed += _folder_size(path)
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed, freed, running


def cache_listing(root: Path | None = None) -> str:
    """What `ftstudio data cache` prints: each entry, unfinished preparations, the total."""
    folder = root or cache_folder()
    found = entries(folder)
    lines = [f"encoded-data cache: {folder}"]
    for entry in found:
        meta = entry.meta
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta.get("used", 0))))
        stats = meta.get("train_stats") or {}
        lines.append(
            f"  {entry.key[:12]}  {format_bytes(entry.size_bytes, decimals=1):>12}  used {used}  "
            f"{meta.get('training_type', '?')} {', '.join(meta.get('sources') or [])}: "
            f"{stats.get('examples', '?')} examples, max_length {meta.get('max_length', '?')}, "
            f"tokenizer {meta.get('tokenizer') or '?'}"
        )
    staged = unfinished(folder)
    staged_size = sum(_folder_size(path) for path in staged)
    if staged:
        lines.append(
            f"  {len(staged)} unfinished preparation(s) (stopped, or running now): "
            f"{format_bytes(staged_size, decimals=1)}; never used"
        )
    total = sum(entry.size_bytes for entry in found) + staged_size
    lines.append(f"total: {len(found)} entries, {format_bytes(total, decimals=1)}")
    if found or staged:
        lines.append("remove them with: ftstudio data cache --clear")
    return "\n".join(lines)
