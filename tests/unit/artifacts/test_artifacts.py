"""grass.artifacts: checksum and settings written beside every artifact, verified when read, locks."""

import json
import threading
import time

import pytest
import torch

from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact, sidecar_path, verify_artifact
from grass.errors import GrassError

SETTINGS = {"model": {"hidden": [32, 16]}, "seed": 0}


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip_and_sidecar(tmp_path):
    path = save_artifact({"w": torch.arange(10.0)}, tmp_path / "m.pt", SETTINGS, kind="model")
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["settings"] == SETTINGS and meta["kind"] == "model" and meta["bytes"] == path.stat().st_size
    assert len(meta["sha256"]) == 64
    assert artifact_ready(path)
    torch.testing.assert_close(load_artifact(path, SETTINGS)["w"], torch.arange(10.0))


def test_a_flipped_byte_is_a_named_error(tmp_path):
    path = save_artifact({"w": torch.randn(1000)}, tmp_path / "m.pt", SETTINGS, kind="model")
    _flip_byte(path)
    with pytest.raises(GrassError, match=r"m\.pt is corrupt.*delete it.*then run stage=finetune"):
        load_artifact(path, SETTINGS, hint="run stage=finetune")


def test_truncation_is_a_named_error(tmp_path):
    path = save_artifact({"w": torch.randn(1000)}, tmp_path / "m.pt", SETTINGS, kind="model")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GrassError, match="corrupt or truncated"):
        verify_artifact(path)


def test_rewritten_file_is_checked_again_in_the_same_process(tmp_path):
    path = save_artifact({"w": torch.randn(1000)}, tmp_path / "m.pt", SETTINGS, kind="model")
    verify_artifact(path)  # checked once, remembered
    time.sleep(0.01)
    _flip_byte(path)
    with pytest.raises(GrassError, match="corrupt"):
        verify_artifact(path)


def test_other_settings_name_the_differing_keys(tmp_path):
    path = save_artifact({"w": torch.zeros(3)}, tmp_path / "m.pt", SETTINGS, kind="model")
    with pytest.raises(GrassError, match=r"other settings; differing keys: seed: file=0, now=1"):
        load_artifact(path, {**SETTINGS, "seed": 1})


def test_file_without_sidecar_is_not_ready_and_refused(tmp_path):
    path = save_artifact({"w": torch.zeros(3)}, tmp_path / "m.pt", SETTINGS, kind="model")
    sidecar_path(path).unlink()  # a writer killed between the two writes leaves this
    assert not artifact_ready(path)
    with pytest.raises(GrassError, match="has no checksum file"):
        load_artifact(path)


def test_corrupt_sidecar_is_a_named_error(tmp_path):
    path = save_artifact({"w": torch.zeros(3)}, tmp_path / "m.pt", SETTINGS, kind="model")
    sidecar_path(path).write_text("{not json")
    with pytest.raises(GrassError, match=r"cannot read the checksum file .*m\.pt\.meta\.json"):
        load_artifact(path)


def test_missing_file_names_the_hint(tmp_path):
    with pytest.raises(GrassError, match="missing artifact .*run stage=finetune"):
        load_artifact(tmp_path / "none.pt", hint="run stage=finetune")


def test_lock_makes_a_second_builder_wait_then_reuse(tmp_path):
    path, built = tmp_path / "a.pt", []

    def build(name):
        with artifact_lock(path):
            if not artifact_ready(path):
                time.sleep(0.2)
                save_artifact({"by": name}, path, SETTINGS, kind="test")
                built.append(name)

    threads = [threading.Thread(target=build, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and load_artifact(path)["by"] == built[0]


def test_a_full_disk_is_one_named_error_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    from grass import artifacts

    real = artifacts._HashingWriter.write

    def full_after_first_write(self, data):
        if self.nbytes:
            self.error = OSError(errno.ENOSPC, "No space left on device")
            raise self.error
        return real(self, data)

    monkeypatch.setattr(artifacts._HashingWriter, "write", full_after_first_write)
    with pytest.raises(GrassError, match=r"disk full while writing .*m\.pt"):
        save_artifact({"w": torch.randn(10000)}, tmp_path / "m.pt", SETTINGS, kind="model")
    assert not (tmp_path / "m.pt").exists() and not list(tmp_path.glob(".*.tmp"))
