"""Fetch Fashion-MNIST from the Debian archive once, so dataset=fmnist2 runs offline (`make fashion-mnist`).

The recipe of grass/data/corpus_fetch.py: `apt-get download dataset-fashion-mnist` into a temp folder, `dpkg -x`
it there (nothing installed, no root), then copy its four IDX .gz files (usr/share/datasets/fashion-mnist/) to
dest and write `fashion-mnist.json` last (its presence marks a complete fetch).

From a Makefile: `python -m grass.data.fashion_fetch [dest]` (default data_cache/fashion-mnist).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from grass.data.corpus_fetch import deb_version, download_deb, extract_deb, manifest_entries, run_fetch_cli
from grass.errors import GrassError
from grass.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

PACKAGE = "dataset-fashion-mnist"
PACKAGE_DIR = Path("usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MANIFEST = "fashion-mnist.json"


def fetch_fashion_mnist(dest: str | Path = "data_cache/fashion-mnist") -> Path:
    """Write the four IDX .gz files and the manifest into dest; skipped when already complete. Returns dest."""
    dest = Path(dest).expanduser()
    if is_complete(dest):
        log.info("Fashion-MNIST already in %s", dest)
        return dest
    with tempfile.TemporaryDirectory(prefix="grass-fmnist-") as tmp:
        deb = download_deb(PACKAGE, Path(tmp))
        source = extract_deb(deb, Path(tmp) / "root") / PACKAGE_DIR
        missing = [f for f in FILES if not (source / f).is_file()]
        if missing:
            raise GrassError(f"{deb.name} has no {missing} under /{PACKAGE_DIR}")
        sizes = {}
        for f in FILES:
            data = (source / f).read_bytes()
            atomic_write_bytes(data, dest / f)
            sizes[f] = len(data)
        version = deb_version(deb)
    atomic_write_json({"debian_package": PACKAGE, "version": version, "bytes": sizes}, dest / MANIFEST)
    log.info("Fashion-MNIST (%s %s) written to %s", PACKAGE, version, dest)
    return dest


def is_complete(dest: Path) -> bool:
    """True when dest holds the manifest and every file it lists, at the size it records."""
    sizes = manifest_entries(dest, MANIFEST, "bytes")
    return sizes is not None and all((Path(dest) / f).is_file() and (Path(dest) / f).stat().st_size == n
                                     for f, n in sizes.items())


def main(argv: list[str] | None = None) -> int:
    """`python -m grass.data.fashion_fetch [dest]`: fetch and print where it landed."""
    return run_fetch_cli(fetch_fashion_mnist, "python -m grass.data.fashion_fetch [dest folder]", 1, argv)


if __name__ == "__main__":
    sys.exit(main())
