"""The early dattri check runs before the heavy imports: it must stay light and agree with the stage registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from grass.dattri_bench.preflight import IMPORTING_STAGE_VALUES
from grass.lds_stages.run import LDS_STAGES, lds_stages


@pytest.mark.parametrize("stage", ["all", *LDS_STAGES])
def test_importing_stage_values_match_the_registry(stage):
    assert ("finetune" in lds_stages(stage)) == (stage in IMPORTING_STAGE_VALUES)


def test_the_early_check_imports_no_lightning_or_transformers():
    code = ("import sys, grass.dattri_bench.preflight, grass.hydra_callbacks; "
            "print(sorted(m for m in ('lightning', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
