"""CIFAR-10 in checksummed chunks, for benchmarks/gpu_cifar10.py.

A call to the GPU machine carries at most 64 MiB (the ~14 MiB working tree included),
and CIFAR-10 is ~176 MiB of uint8, so ``pack`` writes it here as (xz-compressed)
``.npz`` chunks small enough to carry one per call, with a ``manifest.json`` of their
sizes and sha256; on the device ``check`` lists the chunks present, missing or corrupted,
and ``load_chunks`` refuses (:class:`DataError`) unless every chunk is there and intact,
then decodes them (numpy ``allow_pickle=False``: nothing is unpickled).  The command
line (``pack``, ``check``) and the whole procedure are in gpu_cifar10.py's docstring.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

FORMAT = "tdsnn-gpu-cifar10-chunks/1"
MANIFEST = "manifest.json"
MAX_CHUNK_MIB = 60.0
IMAGE_SHAPE = (3, 32, 32)
MIB = 1 << 20


class DataError(RuntimeError):
    """The chunk folders do not hold a complete, intact copy of what ``pack`` wrote."""


# ----------------------------------------------------------------------------- packing


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def _encode(images: np.ndarray, labels: np.ndarray, compression: str, preset: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, images=images, labels=labels)
    raw = buf.getvalue()
    return lzma.compress(raw, preset=preset) if compression == "xz" else raw


def _split_encoded(images, labels, limit_bytes, compression, preset, jobs) -> list[tuple]:
    """Equal parts of one split, as few as keep every encoded part within ``limit_bytes``."""
    n = len(labels)
    raw = images.nbytes + labels.nbytes
    parts = max(1, math.ceil(raw * (0.8 if compression == "xz" else 1.0) / limit_bytes))
    while True:
        bounds = [round(k * n / parts) for k in range(parts + 1)]
        spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        with ThreadPoolExecutor(max(1, jobs)) as pool:  # lzma releases the GIL
            blobs = list(pool.map(
                lambda s: _encode(images[s[0]:s[1]], labels[s[0]:s[1]], compression, preset),
                spans,
            ))  # fmt: skip
        if all(len(b) <= limit_bytes for b in blobs) or parts >= n:
            return [(a, b, blob) for (a, b), blob in zip(spans, blobs)]
        parts += 1


def write_chunks(
    folder: Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    chunk_mib: float = 45.0,
    compression: str = "xz",
    preset: int = 6,
    jobs: int = 1,
    meta: dict | None = None,
) -> dict:
    """Write each split's (uint8 N x 3 x 32 x 32 images, labels) as chunks and a manifest."""
    if not 0 < chunk_mib <= MAX_CHUNK_MIB:
        raise ValueError(f"chunk_mib must be in (0, {MAX_CHUNK_MIB:g}], got {chunk_mib}")
    if compression not in ("xz", "none"):
        raise ValueError(f"compression must be 'xz' or 'none', got {compression!r}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("# written by benchmarks/gpu_cifar10.py pack\n*\n")
    suffix = ".npz.xz" if compression == "xz" else ".npz"
    chunks, counts = [], {}
    for split, (images, labels) in splits.items():
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.ascontiguousarray(labels).astype(np.uint8)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) != len(labels):
            raise ValueError(f"{split}: expected N x 3 x 32 x 32 images and N labels, "
                             f"got {images.shape} and {labels.shape}")  # fmt: skip
        counts[split] = len(labels)
        parts = _split_encoded(images, labels, int(chunk_mib * MIB), compression, preset, jobs)
        for k, (start, stop, blob) in enumerate(parts):
            name = f"{split}_{k}{suffix}"
            (folder / name).write_bytes(blob)
            chunks.append({"file": name, "split": split, "start": start, "count": stop - start,
                           "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
            print(f"wrote {folder / name}: {stop - start} images, {len(blob) / MIB:.1f} MiB",
                  flush=True)  # fmt: skip
    manifest = {"format": FORMAT, "compression": compression, "counts": counts,
                "chunks": chunks, **(meta or {})}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def pack(args: argparse.Namespace) -> None:
    import gpu_checks  # benchmarks/gpu_checks.py: MEAN, STD

    from tdsnn.data import load_dataset

    splits = {}
    for split, limit in (("train", args.train_limit), ("test", args.test_limit)):
        data = load_dataset("cifar10", split, args.data_dir)
        images, labels = data.images, data.labels
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        splits[split] = (images.numpy(), labels.numpy())
    write_chunks(args.out, splits, chunk_mib=args.chunk_mib, compression=args.compression,
                 preset=args.preset, jobs=args.jobs,
                 meta={"dataset": "cifar10", "mean": list(gpu_checks.MEAN),
                       "std": list(gpu_checks.STD)})  # fmt: skip
    print(f"manifest: {args.out / MANIFEST}", flush=True)


# ----------------------------------------------------------------------------- checking


def inspect_chunks(folders: Sequence[Path], hashes: bool = True) -> dict:
    """Find the manifest and every chunk it lists in ``folders`` (the first intact copy).

    Returns ``{"manifest", "manifest_path", "found" {file: path}, "missing" [file],
    "corrupt" [file]}``; raises :class:`DataError` if no folder holds a readable manifest
    or two folders hold different ones.
    """
    folders = [Path(f) for f in folders]
    manifests = []
    for folder in folders:
        path = folder / MANIFEST
        if path.is_file():
            try:
                manifests.append((path, json.loads(path.read_text())))
            except (OSError, ValueError) as exc:
                raise DataError(f"{path} is not readable JSON ({exc}); carry it again") from None
    if not manifests:
        raise DataError(f"no {MANIFEST} in {', '.join(map(str, folders))}: carry it (written "
                        "by `pack`) with the chunks")  # fmt: skip
    path, manifest = manifests[0]
    for other, content in manifests[1:]:
        if content != manifest:
            raise DataError(f"{path} and {other} differ: the folders hold different packs")
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: unknown format {manifest.get('format')!r} (want {FORMAT!r})")
    found, missing, corrupt = {}, [], []
    for chunk in manifest["chunks"]:
        name = chunk["file"]
        copies = [f / name for f in folders if (f / name).is_file()]
        good = [
            p for p in copies
            if p.stat().st_size == chunk["bytes"] and (not hashes or _sha256(p) == chunk["sha256"])
        ]  # fmt: skip
        if good:
            found[name] = good[0]
        elif copies:
            corrupt.append(name)
        else:
            missing.append(name)
    return {"manifest": manifest, "manifest_path": path, "found": found,
            "missing": missing, "corrupt": corrupt}  # fmt: skip


def require_complete(folders: Sequence[Path]) -> dict:
    """:func:`inspect_chunks`, raising :class:`DataError` naming every absent or bad chunk."""
    state = inspect_chunks(folders)
    if state["missing"] or state["corrupt"]:
        parts = []
        if state["missing"]:
            parts.append("missing chunks: " + ", ".join(state["missing"]))
        if state["corrupt"]:
            parts.append("corrupted chunks (size or sha256 differs from the manifest): "
                         + ", ".join(state["corrupt"]))  # fmt: skip
        raise DataError(
            f"refusing to run: the CIFAR-10 pack in {', '.join(map(str, folders))} is "
            f"incomplete; {'; '.join(parts)}. Carry each of them (see this script's "
            "docstring) and run again."
        )
    return state


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        raw = lzma.decompress(raw)
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return z["images"], z["labels"]


def load_chunks(folders: Sequence[Path], jobs: int = 8) -> tuple[dict, dict]:
    """Check the pack, then return ``({split: (uint8 images, int64 labels)}, state)``
    (``state`` as from :func:`inspect_chunks`)."""
    state = require_complete(folders)
    manifest, chunks = state["manifest"], state["manifest"]["chunks"]
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        arrays = list(pool.map(lambda c: _decode(state["found"][c["file"]]), chunks))
    out = {}
    for split, count in manifest["counts"].items():
        images = np.empty((count, *IMAGE_SHAPE), dtype=np.uint8)
        labels = np.empty(count, dtype=np.int64)
        filled = 0
        for chunk, (x, y) in zip(chunks, arrays):
            if chunk["split"] != split:
                continue
            a, n = chunk["start"], chunk["count"]
            if x.dtype != np.uint8 or x.shape != (n, *IMAGE_SHAPE) or y.shape != (n,):
                raise DataError(f"{chunk['file']}: arrays {x.dtype} {x.shape} / {y.shape} do "
                                "not match the manifest")  # fmt: skip
            images[a : a + n], labels[a : a + n] = x, y
            filled += n
        if filled != count or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
            raise DataError(f"{split}: the chunks hold {filled} of {count} images or bad labels")
        out[split] = (torch.from_numpy(images), torch.from_numpy(labels))
    return out, state


def check(args: argparse.Namespace) -> int:
    try:
        state = inspect_chunks(args.data)
    except DataError as exc:
        print(f"check: {exc}", flush=True)
        return 1 if args.strict else 0
    for chunk in state["manifest"]["chunks"]:
        name = chunk["file"]
        where = state["found"].get(name)
        status = f"present in {where.parent}" if where else (
            "CORRUPTED" if name in state["corrupt"] else "MISSING")  # fmt: skip
        print(f"{name:>16}  {chunk['bytes'] / MIB:6.1f} MiB  {status}", flush=True)
    complete = not state["missing"] and not state["corrupt"]
    print("check: complete" if complete else
          "check: INCOMPLETE, missing " + ", ".join(state["missing"] + state["corrupt"]),
          flush=True)  # fmt: skip
    return 0 if complete or not args.strict else 1
