"""The in-memory attributor's features are checked against free memory before any gradient is computed."""

import pytest

from grass.errors import GrassError
from grass.validate import check_feature_memory


def test_features_that_fit_pass():
    check_feature_memory(5, 480, 4096, available=int(1e9))  # 39 MB


def test_features_beyond_free_memory_are_one_error():
    # the music stand-in's uncompressed TRAK: 5 checkpoints x 480 rows x 2,576,006 parameters = 24.7 GB
    with pytest.raises(GrassError, match=r"5 checkpoint\(s\) x 480 .* = 24\.7 GB in memory, and 20\.0 GB is free"):
        check_feature_memory(5, 480, 2_576_006, available=int(20e9))


def test_default_reads_free_memory():
    with pytest.raises(GrassError, match="tda.num_checkpoints"):
        check_feature_memory(1, 1, 1 << 62)  # 18 EB: more than any machine has free
