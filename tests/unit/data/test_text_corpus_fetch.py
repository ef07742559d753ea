"""data.corpus_fetch: R lazy-load databases read with rdata (synthetic ones built here), idempotent fetch."""

import bz2
import gzip
import json
import lzma
import shutil
import struct
import zlib

import pytest

from grass.data import corpus_fetch
from grass.data.corpus_fetch import fetch_corpus, r_lines_to_text, read_lazyload_db
from grass.errors import GrassError


# --- a minimal R serializer (XDR, format version 2): character vectors, integer vectors, named lists ---
def _ints(*values):
    return b"".join(struct.pack(">i", v) for v in values)


def _charsxp(s):
    if s is None:
        return _ints(9, -1)  # NA_STRING
    raw = s.encode("utf-8")
    return _ints(9 | (8 << 12), len(raw)) + raw  # CHARSXP, UTF-8 flag in the general-purpose bits


def _strsxp(items, attributes=b""):
    return _ints(16 | ((1 << 9) if attributes else 0), len(items)) + b"".join(map(_charsxp, items)) + attributes


def _named_list(entries: dict):
    names = _ints(2 | (1 << 10)) + _ints(1) + _charsxp("names") + _strsxp(list(entries)) + _ints(254)
    return _ints(19 | (1 << 9), len(entries)) + b"".join(entries.values()) + names


def _rds(body):
    return b"X\n" + _ints(2, 0x040201, 0x020300) + body


def write_lazyload_db(folder, variables: dict, compressed: int = 1):
    """Rdata.rdx / Rdata.rdb holding character vectors, the layout R's lazy-load data uses."""
    folder.mkdir(parents=True, exist_ok=True)
    blob, index = b"", {}
    for name, lines in variables.items():
        raw = _rds(_strsxp(lines))
        if compressed == 1:
            entry = struct.pack(">I", len(raw)) + zlib.compress(raw)
        else:  # R's type byte: 2 -> bzip2, 3 -> xz
            entry = struct.pack(">I", len(raw)) + (
                b"2" + bz2.compress(raw) if compressed == 2 else b"X" + lzma.compress(raw)
            )
        index[name] = _ints(13, 2, len(blob), len(entry))
        blob += entry
    rdx = _rds(
        _named_list(
            {
                "variables": _named_list(index),
                "references": _named_list({}),
                "compressed": _ints(10, 1, compressed) if compressed == 1 else _ints(13, 1, compressed),
            }
        )
    )
    (folder / "Rdata.rdx").write_bytes(gzip.compress(rdx))
    (folder / "Rdata.rdb").write_bytes(blob)
    return folder / "Rdata.rdx", folder / "Rdata.rdb"


NOVELS = {
    "emma": ["EMMA", "", "By Jane Austen", None, "Emma Woodhouse, handsome, clever, and rich, naïve"],
    "persuasion": ["Persuasion", None, "Sir Walter Elliot, of Kellynch Hall"],
}


@pytest.mark.parametrize("compressed", [1, 2, 3])
def test_reads_every_variable_of_a_lazyload_db(tmp_path, compressed):
    rdx, rdb = write_lazyload_db(tmp_path / "data", NOVELS, compressed)
    objects = read_lazyload_db(rdx, rdb)
    assert list(objects) == ["emma", "persuasion"]
    assert (
        r_lines_to_text(objects["emma"])
        == "EMMA\n\nBy Jane Austen\n\nEmma Woodhouse, handsome, clever, and rich, naïve\n"
    )
    assert list(read_lazyload_db(rdx, rdb, ["persuasion"])) == ["persuasion"]


def test_lazyload_errors_are_named(tmp_path):
    rdx, rdb = write_lazyload_db(tmp_path / "data", NOVELS)
    with pytest.raises(GrassError, match=r"no variable\(s\) \['mobydick'\]"):
        read_lazyload_db(rdx, rdb, ["mobydick"])
    rdb.write_bytes(rdb.read_bytes()[:10] + b"\0" * 40 + rdb.read_bytes()[50:])
    with pytest.raises(GrassError, match="corrupt lazy-load entry"):
        read_lazyload_db(rdx, rdb, ["emma"])
    with pytest.raises(GrassError, match="missing"):
        read_lazyload_db(tmp_path / "none.rdx", rdb)


def test_bom_is_dropped_and_non_vectors_refused():
    assert r_lines_to_text(["\ufeffThe Project", "Gutenberg"]) == "The Project\nGutenberg\n"
    with pytest.raises(GrassError, match="character vector"):
        r_lines_to_text("a string")


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """download_deb / extract_deb replaced by a package tree built here; counts downloads."""
    calls = []

    def download(package, folder):
        calls.append(package)
        deb = folder / f"{package}_1.0-1_all.deb"
        deb.parent.mkdir(parents=True, exist_ok=True)
        deb.write_bytes(b"")
        return deb

    def extract(deb, folder):
        write_lazyload_db(folder / "usr/lib/R/site-library/janeaustenr/data", NOVELS)
        return folder

    monkeypatch.setattr(corpus_fetch, "download_deb", download)
    monkeypatch.setattr(corpus_fetch, "extract_deb", extract)
    monkeypatch.setattr(corpus_fetch, "deb_version", lambda deb: "1.0-1")
    return calls


def test_fetch_writes_one_file_per_novel_and_is_idempotent(tmp_path, fake_apt):
    dest = fetch_corpus("janeausten", tmp_path / "ja")
    assert sorted(p.name for p in dest.glob("*.txt")) == ["emma.txt", "persuasion.txt"]
    assert (dest / "persuasion.txt").read_text(
        encoding="utf-8"
    ) == "Persuasion\n\nSir Walter Elliot, of Kellynch Hall\n"
    manifest = json.loads((dest / "corpus.json").read_text())
    assert manifest["debian_packages"] == {"r-cran-janeaustenr": "1.0-1"}
    assert manifest["chars"]["persuasion.txt"] == len((dest / "persuasion.txt").read_text(encoding="utf-8"))
    assert fake_apt == ["r-cran-janeaustenr"]
    fetch_corpus("janeausten", dest)
    assert fake_apt == ["r-cran-janeaustenr"]  # complete: nothing downloaded again
    (dest / "emma.txt").unlink()
    fetch_corpus("janeausten", dest)
    assert fake_apt == ["r-cran-janeaustenr"] * 2 and (dest / "emma.txt").is_file()


def test_unknown_corpus_lists_the_choices(tmp_path):
    with pytest.raises(GrassError, match="unknown corpus 'austen'.*janeausten.*kjv"):
        fetch_corpus("austen", tmp_path)


def test_cli_usage(capsys):
    assert corpus_fetch.main(["--help"]) == 2
    assert "janeausten|mobydick|kjv" in capsys.readouterr().err


@pytest.mark.slow
def test_real_fetch_of_jane_austen(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("needs Debian's apt-get and dpkg (and the Debian mirror) to download r-cran-janeaustenr")
    try:
        dest = fetch_corpus("janeausten", tmp_path / "ja")
    except GrassError as e:
        pytest.skip(f"the Debian mirror is not reachable here: {e}")
    chars = json.loads((dest / "corpus.json").read_text())["chars"]
    assert sorted(chars) == [
        "emma.txt",
        "mansfieldpark.txt",
        "northangerabbey.txt",
        "persuasion.txt",
        "prideprejudice.txt",
        "sensesensibility.txt",
    ]
    assert sum(chars.values()) > 3_900_000
    assert "Emma Woodhouse, handsome, clever, and rich" in (dest / "emma.txt").read_text(encoding="utf-8")
