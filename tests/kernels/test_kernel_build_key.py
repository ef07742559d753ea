"""The C++ kernel's build folder is keyed by its source, flags, torch version and compiler, so checkouts with the
same source share one build and checkouts with different sources never rebuild each other's."""

import logging

from torch.utils import cpp_extension

from grass.kernels import sjlt_cpu


def test_same_source_same_name_different_source_different_name(tmp_path):
    a, b = tmp_path / "clone_a" / "sjlt_cpu.cpp", tmp_path / "clone_b" / "sjlt_cpu.cpp"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(sjlt_cpu.source().read_bytes())
    name = sjlt_cpu.extension_name
    assert name(a.read_bytes(), "2.13.0", "/usr/bin/c++") == name(b.read_bytes(), "2.13.0", "/usr/bin/c++")
    b.write_bytes(b.read_bytes() + b"\n// edited in clone b\n")
    assert name(a.read_bytes(), "2.13.0", "/usr/bin/c++") != name(b.read_bytes(), "2.13.0", "/usr/bin/c++")
    assert name(a.read_bytes(), "2.13.0", "/usr/bin/c++") != name(a.read_bytes(), "2.14.0", "/usr/bin/c++")
    assert name(a.read_bytes(), "2.13.0", "/usr/bin/c++") != name(a.read_bytes(), "2.13.0", "/usr/bin/clang++")
    # another environment's torch: build.ninja names its headers by path, so it gets its own folder
    assert name(a.read_bytes(), "2.13.0", "/usr/bin/c++", "/env_a/torch") != name(a.read_bytes(), "2.13.0",
                                                                                  "/usr/bin/c++", "/env_b/torch")
    assert name(a.read_bytes()).startswith(f"{sjlt_cpu.EXTENSION_PREFIX}_")


def test_build_is_announced_only_when_the_keyed_folder_has_no_build(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw))
    with caplog.at_level(logging.WARNING, logger=sjlt_cpu.__name__):
        sjlt_cpu._build()
    name = sjlt_cpu.extension_name(sjlt_cpu.source().read_bytes())
    assert calls[0]["name"] == name and calls[0]["build_directory"].endswith(name)
    assert any("building the C++ SJLT kernel" in r.getMessage() for r in caplog.records)
    (tmp_path / name / f"{name}.so").write_bytes(b"")  # what a finished build leaves
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=sjlt_cpu.__name__):
        sjlt_cpu._build()
    assert not any("building" in r.getMessage() for r in caplog.records)


def test_clones_compile_from_one_shared_copy_of_the_source(tmp_path, monkeypatch):
    """build.ninja names sources by path: two clones must hand ninja the same path, or each rebuilds the other's."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    calls = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw))
    for clone in ("clone_a", "clone_b"):
        src = tmp_path / clone / "kernels" / sjlt_cpu.SOURCE_NAME
        src.parent.mkdir(parents=True)
        src.write_bytes(sjlt_cpu.source().read_bytes())
        monkeypatch.setattr(sjlt_cpu, "SOURCE_CANDIDATES", (src,))
        sjlt_cpu._build()
    (first,), (second,) = calls[0]["sources"], calls[1]["sources"]
    assert first == second and first.startswith(calls[0]["build_directory"])
    copy = tmp_path / "ext" / calls[0]["name"] / "src" / sjlt_cpu.SOURCE_NAME
    stamp = copy.stat().st_mtime_ns
    sjlt_cpu._build()  # a third run leaves the copy (and so ninja's view of it) untouched
    assert copy.read_bytes() == sjlt_cpu.source().read_bytes() and copy.stat().st_mtime_ns == stamp


def test_a_lock_left_by_a_killed_build_is_removed_not_waited_on(tmp_path, monkeypatch, caplog):
    """torch's FileBaton `lock` file outlives a killed build, and cpp_extension.load would wait on it forever."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    name = sjlt_cpu.extension_name(sjlt_cpu.source().read_bytes())
    (tmp_path / name).mkdir()
    (tmp_path / name / "lock").write_bytes(b"")  # what a build killed mid-compile leaves
    seen = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: seen.append((tmp_path / name / "lock").exists()))
    with caplog.at_level(logging.WARNING, logger=sjlt_cpu.__name__):
        sjlt_cpu._build()
    assert seen == [False]
    assert any("left by a build that was killed" in r.getMessage() for r in caplog.records)
