"""The repository layout: kernels/ and experiments/ hold no Python, and pyproject.toml packages all of grass."""

from __future__ import annotations

from pathlib import Path

import pytest

from grass.kernels import sjlt_cpu

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder", ["kernels", "experiments"])
def test_top_level_folders_hold_no_python(folder):
    """PyPI's `kernels` and dattri's `experiments` are packages of those names: ours must not be one."""
    assert (ROOT / folder).is_dir()
    assert not list((ROOT / folder).rglob("*.py"))


def test_pyproject_lists_every_grass_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools_conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools_conf["packages"])
    packages = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "grass").rglob("__init__.py")}
    assert packages <= listed
    csrc = setuptools_conf["package-dir"]["grass.kernels.csrc"]
    assert (ROOT / csrc / sjlt_cpu.SOURCE_NAME).is_file()
    conf = setuptools_conf["package-dir"]["grass.conf"]  # grass.api finds compressors and tdas there in a wheel
    assert (ROOT / conf / "compressor" / "sjlt.yaml").is_file()


def test_checkout_compiles_the_top_level_kernel_source():
    assert sjlt_cpu.source() == ROOT / "kernels" / sjlt_cpu.SOURCE_NAME
