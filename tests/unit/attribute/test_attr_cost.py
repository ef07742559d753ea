"""grass.attribute.cost: the solver each request gets, and the solver setting's place in the config."""

import pytest

from grass.attribute.cost import Request, check_solver, cholesky_precision, choose_solver
from grass.errors import GrassError
from grass.instantiate import instantiate_node
from grass.run_settings import result_settings

DEFAULT = dict(n=4500, k=4096, m=500)  # the default experiment (mnist_mlp, sjlt k = 4096)


def test_default_grid_and_final_scores_go_to_cholesky():
    # 10 dampings on the 50 validation queries, then 1 damping on all 500: cheaper as factorizations
    assert choose_solver(Request(**DEFAULT, dampings=10, scored=50)) == "cholesky"
    assert choose_solver(Request(**DEFAULT, dampings=1, scored=500)) == "cholesky"
    assert cholesky_precision(4096, 50) == "mixed" and cholesky_precision(4096, 500) == "float64"


def test_many_dampings_or_a_fitted_eigh_go_to_eigh():
    assert choose_solver(Request(**DEFAULT, dampings=200, scored=50)) == "eigh"
    assert choose_solver(Request(**DEFAULT, dampings=1, scored=500), fitted=True) == "eigh"


def test_a_configured_solver_is_used_as_is_and_a_typo_is_refused():
    request = Request(**DEFAULT, dampings=10, scored=50)
    assert choose_solver(request, "eigh") == "eigh"
    assert choose_solver(Request(**DEFAULT, dampings=500, scored=50), "cholesky") == "cholesky"
    with pytest.raises(GrassError, match="auto"):
        check_solver("cholesky64")


@pytest.mark.parametrize("tda", ["trak", "if_efim"])
def test_solver_is_a_tda_setting_outside_the_run_hash(compose_cfg, tda):
    cfg = compose_cfg(f"tda={tda}")
    assert cfg.tda.attributor.solver == "auto"
    assert instantiate_node(compose_cfg(f"tda={tda}", "tda.attributor.solver=eigh").tda.attributor,
                            "tda.attributor").solver == "eigh"
    # how the systems are solved is not what is computed: same run folder
    assert result_settings(compose_cfg(f"tda={tda}", "tda.attributor.solver=cholesky")) == result_settings(cfg)
