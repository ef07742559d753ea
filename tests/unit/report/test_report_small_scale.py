"""The small-scale report: two-stage rows keyed by k', the paper's numbers beside ours (tiny stand-ins map to
their paper setting), the bar figure per experiment and the combined table + figure over several settings."""

import csv
import json

import pytest

from grass.errors import GrassError
from grass.report.bars import method_key, time_ratios
from grass.report.reference import paper_number
from grass.report.table import build_combined, build_report, experiment_rows


def _run(root, experiment, compressor, k, lds, seconds, sparse_dim=None):
    kp = "" if sparse_dim is None else f"-kp{sparse_dim}"
    path = root / experiment / "data-model" / f"{compressor}{kp}-k{k}-trak-s0-abcdef" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "run/tda": "trak", "run/compressor": compressor, "run/proj_dim": k, "run/sparse_dim": sparse_dim,
        "run/seed": 0, "run/started": "2026-01-01T00:00:00", "run/machine": "test", "lds/mean": lds,
        "lds/ci_low": lds - 0.02, "lds/ci_high": lds + 0.02, "time/compress_s": seconds}))


def _grid(root, experiment, scale=1.0):
    for k in (2048, 4096):
        _run(root, experiment, "sjlt", k, 0.40 * scale, 2.0)
        _run(root, experiment, "random_mask", k, 0.30 * scale, 0.5)
        _run(root, experiment, "grass", k, 0.35 * scale, 1.0, sparse_dim=32768)
        _run(root, experiment, "grass_sm", k, 0.36 * scale, 1.0, sparse_dim=131072)


def test_two_stage_rows_are_labelled_by_k_prime_and_get_the_papers_numbers(tmp_path):
    _grid(tmp_path, "fmnist2_resnet9_tiny")  # the CPU stand-in prints the paper's CIFAR-2 numbers
    text = build_report(tmp_path, "fmnist2_resnet9_tiny")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "0.350 [0.330, 0.370] / 1.00 | 0.412 / 0.37" in rows["grass k'=32768"]  # paper: ResNet-9, RM 32768
    assert "0.360 [0.340, 0.380] / 1.00 | 0.412 / 0.79" in rows["grass_sm k'=131072"]  # SM 131072
    assert "| 0.413 / 12.36 |" in rows["sjlt"]
    assert list(rows)[1:] == ["random_mask", "sjlt", "grass k'=32768", "grass_sm k'=131072"]  # after the header
    out = tmp_path / "fmnist2_resnet9_tiny" / "report"
    assert (out / "lds_time_bars.png").stat().st_size > 10_000 and (out / "lds_vs_time.png").exists()
    with open(out / "table.csv") as f:
        assert {r["sparse_dim"] for r in csv.DictReader(f)} == {"", "32768", "131072"}


def test_paper_numbers_of_two_stage_cells_are_keyed_by_compressor_and_k_prime():
    assert paper_number("maestro_music", "grass_sm", 8192, 524288) == (0.339, 2.66)
    assert paper_number("maestro_music", "grass", 8192) is None  # blowup * k: not a paper cell
    assert paper_number("music21_music_tiny", "fjlt", 2048) == (0.291, 100.81)
    assert paper_number("cifar2_resnet9", "grass", 2048, 524288) is None


def test_time_ratios_are_to_sjlt_at_the_same_k_for_ours_and_the_papers():
    rows = [{"method": "sjlt", "k": 2048, "compress_s": 2.0, "paper_s": 12.36},
            {"method": "random_mask", "k": 2048, "compress_s": 0.5, "paper_s": 0.10},
            {"method": "random_mask", "k": 4096, "compress_s": 0.5, "paper_s": None}]
    ratios = time_ratios(rows)
    assert ratios[("random_mask", 2048)] == pytest.approx((0.25, 0.10 / 12.36))
    assert ratios[("random_mask", 4096)] == (None, None)  # no SJLT run at k=4096


def test_methods_are_ordered_as_in_the_paper():
    names = ["grass_sm k'=131072", "sjlt", "grass k'=131072", "grass k'=32768", "fjlt", "random_mask"]
    assert sorted(names, key=method_key) == ["random_mask", "sjlt", "fjlt", "grass k'=32768", "grass k'=131072",
                                             "grass_sm k'=131072"]


def test_combined_report_has_every_setting_in_one_table_and_one_figure(tmp_path):
    _grid(tmp_path, "mnist_mlp_tiny")
    _grid(tmp_path, "music21_music_tiny", scale=0.5)
    text = build_combined(tmp_path, "small_scale_tiny", ["mnist_mlp_tiny", "music21_music_tiny"])
    assert text.index("## mnist_mlp_tiny") < text.index("## music21_music_tiny")
    assert "| 0.417 / 0.49 |" in text and "| 0.306 / 21.65 |" in text  # each setting's paper SJLT at k=2048
    out = tmp_path / "small_scale_tiny" / "report"
    assert (out / "lds_time_bars.png").stat().st_size > 10_000
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["experiment"] for r in rows} == {"mnist_mlp_tiny", "music21_music_tiny"} and len(rows) == 16


def test_combined_report_names_a_setting_without_runs(tmp_path):
    _grid(tmp_path, "mnist_mlp_tiny")
    with pytest.raises(GrassError, match="no runs under .*music21_music_tiny"):
        build_combined(tmp_path, "small_scale_tiny", ["mnist_mlp_tiny", "music21_music_tiny"])
    assert len(experiment_rows(tmp_path, "mnist_mlp_tiny")) == 8
