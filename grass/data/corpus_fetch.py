"""Fetch a real English corpus from the Debian archive once, so runs can read it offline (dataset=local_text).

Corpora (choose by name; nothing is picked for you):
- `janeausten` (default): Jane Austen's six novels, from `r-cran-janeaustenr`;
- `mobydick`: Melville's Moby Dick, from `r-cran-tokenizers`;
- `kjv`: the King James Bible, one file per book, from `bible-kjv-text` (read with the `bible`
  program of `bible-kjv`).
Nothing is installed: `apt-get download` fetches the .deb into a temp folder and `dpkg -x` unpacks
it there. R packages keep their data in a lazy-load database (`data/Rdata.rdx` = gzip'd index of
offsets, `data/Rdata.rdb` = one compressed serialized R object per variable), read with PyPI `rdata`.
Each R character vector holds one line per element; NA elements become empty lines.

From a Makefile: `python -m grass.data.corpus_fetch [name] [dest]` (no shell involved).
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from types import MappingProxyType

from grass.errors import GrassError
from grass.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

MANIFEST = "corpus.json"  # written last: its presence marks a complete fetch
R_CORPORA = MappingProxyType({  # name -> (Debian package, R package, variables; None = every variable)
    "janeausten": ("r-cran-janeaustenr", "janeaustenr", None),
    "mobydick": ("r-cran-tokenizers", "tokenizers", ("mobydick",)),
})
CORPORA = (*R_CORPORA, "kjv")


def fetch_corpus(name: str = "janeausten", dest: str | Path | None = None) -> Path:
    """Write the corpus as <dest>/<document>.txt (UTF-8) plus corpus.json; skipped when already complete.

    dest defaults to data_cache/<name> (git-ignored). Returns dest.
    """
    if name not in CORPORA:
        raise GrassError(f"unknown corpus {name!r}; choose one of {list(CORPORA)}")
    dest = Path("data_cache") / name if dest is None else Path(dest).expanduser()
    if is_complete(dest):
        log.info("corpus %s already in %s", name, dest)
        return dest
    with tempfile.TemporaryDirectory(prefix="grass-corpus-") as tmp:
        texts, packages = _fetch_texts(name, Path(tmp))
    for fname, text in texts.items():
        atomic_write_bytes(text.encode("utf-8"), dest / fname)
    chars = {fname: len(text) for fname, text in texts.items()}
    atomic_write_json({"corpus": name, "debian_packages": packages, "chars": chars}, dest / MANIFEST)
    log.info("corpus %s: %d files, %d characters written to %s", name, len(texts), sum(chars.values()), dest)
    return dest


def manifest_entries(dest: Path, manifest: str, key: str) -> dict | None:
    """{file: recorded number} under `key` of dest's manifest (written last by a fetch), or None when the manifest
    is missing or damaged (the caller fetches again)."""
    path = Path(dest) / manifest
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text())[key])
    except (ValueError, KeyError, TypeError):
        return None


def is_complete(dest: Path) -> bool:
    """True when dest holds a manifest and every file it lists."""
    files = manifest_entries(dest, MANIFEST, "chars")
    return files is not None and all((Path(dest) / f).is_file() for f in files)


def _fetch_texts(name: str, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """({file name: text}, {Debian package: version}) of one corpus, working inside tmp."""
    if name in R_CORPORA:
        deb_name, r_package, variables = R_CORPORA[name]
        deb = download_deb(deb_name, tmp)
        root = extract_deb(deb, tmp / "root")
        data = root / "usr" / "lib" / "R" / "site-library" / r_package / "data"
        objects = read_lazyload_db(data / "Rdata.rdx", data / "Rdata.rdb", variables)
        return {f"{var}.txt": r_lines_to_text(vec) for var, vec in objects.items()}, {deb_name: deb_version(deb)}
    debs = [download_deb(p, tmp) for p in ("bible-kjv", "bible-kjv-text")]
    root = tmp / "root"
    for deb in debs:
        extract_deb(deb, root)
    return kjv_books(root), {p: deb_version(d) for p, d in zip(("bible-kjv", "bible-kjv-text"), debs)}


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise GrassError(f"`{cmd[0]}` is not available: fetching corpora needs Debian/Ubuntu's apt and dpkg. "
                         "Otherwise put UTF-8 .txt files in a folder and set dataset.path to it")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def download_deb(package: str, folder: Path) -> Path:
    """`apt-get download package` into folder (running `apt-get update` once if apt does not know it)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = _run(["apt-get", "download", package], cwd=folder)
    if result.returncode != 0 and "Unable to locate package" in result.stderr:
        log.info("apt does not know %s yet: running apt-get update", package)
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise GrassError(f"apt-get update failed (it needs root and the Debian mirror):\n{update.stderr.strip()}")
        result = _run(["apt-get", "download", package], cwd=folder)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise GrassError(f"apt-get download {package} failed (rc {result.returncode}):\n{result.stderr.strip()}")
    return debs[-1]


def extract_deb(deb: Path, folder: Path) -> Path:
    """Unpack a .deb's files under folder (`dpkg -x`, nothing installed)."""
    result = _run(["dpkg", "-x", str(deb), str(folder)])
    if result.returncode != 0:
        raise GrassError(f"dpkg -x {deb.name} failed:\n{result.stderr.strip()}")
    return folder


def deb_version(deb: Path) -> str:
    result = _run(["dpkg-deb", "-f", str(deb), "Version"])
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def read_lazyload_db(rdx: Path, rdb: Path, variables=None) -> dict[str, object]:
    """{variable: converted R object} from an R lazy-load database (rdata's conversion: STRSXP ->
    numpy array, NA -> None). variables None: every variable, in index order."""
    from rdata import conversion, parser  # PyPI rdata; imported here so the rest of grass does not need it

    for f in (rdx, rdb):
        if not Path(f).is_file():
            raise GrassError(f"{f} is missing: not an R package lazy-load database")
    index = conversion.convert(parser.parse_data(gzip.decompress(Path(rdx).read_bytes()), extension=".rds"))
    table = {str(k): v for k, v in index["variables"].items()}
    compressed = int(index["compressed"][0]) if "compressed" in index else 1
    wanted = list(table) if variables is None else list(variables)
    missing = [v for v in wanted if v not in table]
    if missing:
        raise GrassError(f"{rdx} has no variable(s) {missing}; it has {list(table)}")
    blob = Path(rdb).read_bytes()
    out = {}
    for var in wanted:
        offset, length = (int(x) for x in table[var])
        raw = _decompress(blob[offset : offset + length], compressed, f"{rdb}:{var}")
        out[var] = conversion.convert(parser.parse_data(raw, extension=".rds"))
    return out


def _decompress(entry: bytes, compressed: int, where: str) -> bytes:
    """One rdb entry: a 4-byte big-endian uncompressed length, then zlib (compressed=1) or, for 2/3,
    a type byte (Z zlib, 2 bzip2, X xz, 0 stored) and the data (R's lazyLoadDBinsertValue)."""
    size, body = int.from_bytes(entry[:4], "big"), entry[4:]
    methods = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress, b"0": bytes}
    if compressed in (2, 3):
        kind, body = body[:1], body[1:]
        if kind not in methods:
            raise GrassError(f"{where}: unknown lazy-load compression type {kind!r}")
    else:
        kind = b"Z"
    try:
        out = methods[kind](body)
    except (zlib.error, OSError, lzma.LZMAError) as e:
        raise GrassError(f"{where}: corrupt lazy-load entry ({e})") from None
    if len(out) != size:
        raise GrassError(f"{where}: corrupt lazy-load entry ({len(out)} bytes, the header says {size})")
    return out


def r_lines_to_text(vec) -> str:
    """An R character vector (one line per element, NA = None) -> text with '\\n' after every line."""
    if not hasattr(vec, "__len__") or isinstance(vec, (str, bytes, dict)):
        raise GrassError(f"expected an R character vector of lines, got {type(vec).__name__}")
    text = "".join(("" if line is None else str(line)) + "\n" for line in vec)
    return text.removeprefix("\ufeff")  # Gutenberg texts may open with a byte-order mark


_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)\d+:\d+ (.*)$")


def kjv_books(root: Path) -> dict[str, str]:
    """{"NN_<book>.txt": text, one verse per line} from the unpacked bible-kjv(-text) packages."""
    program, data_dir = root / "usr" / "bin" / "bible", root / "usr" / "lib"
    # -p: folder searched for bible.data (-d with an absolute path does not open)
    result = _run([str(program), "-p", str(data_dir), "-f", "gen1:1-rev22:21"])
    if result.returncode != 0 or not result.stdout:
        raise GrassError(f"{program} failed (rc {result.returncode}; it needs libreadline8):\n{result.stderr.strip()}")
    books: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        match = _VERSE.match(line)
        if match is None:
            raise GrassError(f"unexpected line in the bible output: {line[:80]!r}")
        books.setdefault(match.group(1), []).append(match.group(2))
    return {f"{i:02d}_{book}.txt": "\n".join(verses) + "\n" for i, (book, verses) in enumerate(books.items(), 1)}


def run_fetch_cli(fetch, usage: str, max_args: int, argv: list[str] | None = None) -> int:
    """The `python -m grass.data.<fetcher> [args]` entry of a Debian-package fetcher (make corpus, make
    fashion-mnist): fetch(*args) -> dest, printed; a GrassError is one `error:` line and exit status 1."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) > max_args or any(a.startswith("-") for a in args):
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        dest = fetch(*args)
    except GrassError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(dest)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m grass.data.corpus_fetch [name] [dest]`: fetch and print where it landed."""
    return run_fetch_cli(fetch_corpus, f"python -m grass.data.corpus_fetch [{'|'.join(CORPORA)}] [dest folder]", 2,
                         argv)


if __name__ == "__main__":
    sys.exit(main())
