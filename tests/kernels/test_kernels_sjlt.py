"""SJLT fast paths (C++ CPU, Triton) == the pure-torch reference, and the dispatch that picks them (SPEC 3, 7)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from grass.compress.factory import build_compressor
from grass.compress.grass_compressor import GraSS
from grass.compress.sjlt import SJLT
from grass.errors import GrassError
from grass.kernels import dispatch, sjlt_cpu
from grass.kernels.sjlt_reference import sjlt_dense, sjlt_reference, sjlt_sparse

CONF = Path(__file__).resolve().parents[2] / "conf" / "compressor"
TOL = {"rtol": 1e-5, "atol": 1e-5}  # fp32 summation-order differences only


def _tables(c: int, d: int, k: int, index_dtype=torch.int64, int8_signs=False, seed=0):
    """(h [c, d], s [c, d], scale): signs either float with 1/sqrt(c) folded in, or int8 +-1 with scale."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randint(0, k, (c, d), generator=g).to(index_dtype)
    signs = torch.randint(0, 2, (c, d), generator=g) * 2 - 1
    if int8_signs:
        return h, signs.to(torch.int8), 1 / math.sqrt(c)
    return h, signs.to(torch.float32) / math.sqrt(c), 1.0


def _input(b: int, d: int, zero_frac: float, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g)
    return x * (torch.rand(b, d, generator=g) >= zero_frac)


def _mixed_tiles(b: int, d: int) -> torch.Tensor:
    """Columns dense, half zero, all zero and 95 % zero in turn: every per-tile branch of the C++ kernel."""
    x = _input(b, d, 0.0)
    quarter = d // 4
    x[:, quarter:2 * quarter] *= _input(b, quarter, 0.5, seed=2) != 0
    x[:, 2 * quarter:3 * quarter] = 0
    x[:, 3 * quarter:] *= _input(b, d - 3 * quarter, 0.95, seed=3) != 0
    return x


@pytest.fixture
def triton_kernel(monkeypatch):
    """The Triton launcher in interpreter mode (numpy on CPU tensors)."""
    pytest.importorskip("triton", reason="triton is not installed: the Triton SJLT kernel cannot be tested")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    module, reason = dispatch.triton_module()
    assert module is not None, reason
    assert module.interpreting()
    return module.sjlt_forward


@pytest.fixture
def kernel(request):
    """The kernel named by the parameter: "cpp" or "triton"."""
    return request.getfixturevalue("triton_kernel" if request.param == "triton" else "cpp")


@pytest.mark.parametrize("kernel", ["cpp", "triton"], indirect=True)
@pytest.mark.parametrize("c", [1, 2, 4, 16])
@pytest.mark.parametrize("zero_frac", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_fp32_equals_reference(kernel, c, zero_frac, index_dtype):
    h, s, scale = _tables(c, 700, 64, index_dtype, int8_signs=index_dtype == torch.int32)
    x = _input(5, 700, zero_frac)
    out = kernel(x, h, s, 64, scale)
    assert out.dtype == torch.float32 and out.shape == (5, 64)
    torch.testing.assert_close(out, sjlt_reference(x, h, s, 64, scale), **TOL)
    if zero_frac == 1.0:
        assert torch.count_nonzero(out) == 0
    else:
        assert out.abs().sum() > 0


@pytest.mark.parametrize("kernel", ["cpp", "triton"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("zero_frac", [0.0, 0.9])
def test_low_and_high_precision_inputs_equal_reference_on_upcast(kernel, dtype, zero_frac):
    h, s, scale = _tables(4, 700, 64)
    x = _input(5, 700, zero_frac).to(dtype)
    out = kernel(x, h, s, 64, scale)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, sjlt_reference(x.float(), h, s, 64, scale), **TOL)


@pytest.mark.parametrize("kernel", ["cpp", "triton"], indirect=True)
@pytest.mark.parametrize("b,d,k", [(1, 1, 1), (3, 1, 7), (4, 1031, 1), (17, 4099, 33), (9, 2048, 5)])
@pytest.mark.parametrize("int8_signs", [False, True])
def test_odd_shapes_and_mixed_sparsity(kernel, b, d, k, int8_signs):
    h, s, scale = _tables(2, d, k, int8_signs=int8_signs)
    x = _mixed_tiles(b, d) if d >= 4 else _input(b, d, 0.0)
    torch.testing.assert_close(kernel(x, h, s, k, scale), sjlt_dense(x, h, s, k, scale), **TOL)
    torch.testing.assert_close(kernel(x, h, s, k, scale), sjlt_sparse(x, h, s, k, scale), **TOL)


@pytest.mark.parametrize("kernel", ["cpp", "triton"], indirect=True)
def test_empty_batch(kernel):
    h, s, scale = _tables(16, 300, 40)
    out = kernel(torch.zeros(0, 300), h, s, 40, scale)
    assert out.shape == (0, 40) and out.dtype == torch.float32


def test_cpp_is_deterministic_across_thread_counts(cpp):
    h, s, scale = _tables(4, 5000, 128)
    x = _mixed_tiles(33, 5000)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cpp(x, h, s, 128, scale)
        torch.set_num_threads(2)
        two = cpp(x, h, s, 128, scale)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
    assert torch.equal(one, cpp(x, h, s, 128, scale))


@pytest.mark.parametrize("c", [1, 3])
def test_cpp_rows_of_different_density_in_one_block(cpp, c):
    """Rows go through 8-row panels (transposed tiles, shared table reads) and the rest row by row, each
    skipping all-zero tiles: every row's result must equal its own single-row call bit for bit (same order
    of additions) and the reference."""
    h, s, scale = _tables(c, 4501, 97, int8_signs=True)  # last tile: 405 columns, not a multiple of 4
    # zero fractions of 21 rows: a mixed panel of 8, a panel of zero rows but one, then 5 rows alone
    densities = [0.0, 0.9, 1.0, 0.0, 0.5, 0.0, 0.99, 0.0] + [1.0] * 7 + [0.3] + [0.0, 1.0, 0.0, 0.99, 0.5]
    x = torch.cat([_input(1, 4501, z, seed=10 + i) for i, z in enumerate(densities)])
    x[3, 2048:4096] = 0  # a dense row with one all-zero tile
    x[15, :2048] = 0  # the second panel's first tile is all zeros
    together = cpp(x, h, s, 97, scale)
    assert torch.equal(together, torch.cat([cpp(x[i:i + 1], h, s, 97, scale) for i in range(len(densities))]))
    torch.testing.assert_close(together, sjlt_dense(x, h, s, 97, scale), **TOL)


def test_cpp_rejects_bad_tables(cpp):
    h, s, scale = _tables(2, 50, 8)
    x = _input(2, 50, 0.0)
    with pytest.raises(RuntimeError, match="outside"):
        cpp(x, h + 8, s, 8, scale)
    with pytest.raises(RuntimeError, match="d="):
        cpp(x[:, :49].contiguous(), h, s, 8, scale)
    with pytest.raises(RuntimeError, match="contiguous"):
        cpp(x.t(), h, s, 8, scale)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_row_chunks_give_the_same_answer(backend, cpp, monkeypatch):
    """Inputs past 2^31 elements are cut into row chunks; a small cap exercises the same code."""
    h, s, scale = _tables(2, 300, 40)
    x = _input(10, 300, 0.5)
    whole, path = dispatch.sjlt_project(x, h, s, 40, scale, backend=backend)
    calls = []
    real = dispatch._kernel
    monkeypatch.setattr(dispatch, "_kernel", lambda p: lambda *a: calls.append(a[0].shape[0]) or real(p)(*a))
    chunked, chunked_path = dispatch.sjlt_project(x, h, s, 40, scale, backend=backend, max_chunk_elements=900)
    assert path == chunked_path == backend
    assert calls == [3, 3, 3, 1]  # 900 // max(d=300, k=40) rows per chunk
    torch.testing.assert_close(chunked, whole, **TOL)
    empty, _ = dispatch.sjlt_project(x[:0], h, s, 40, scale, backend=backend)
    assert empty.shape == (0, 40)


def test_auto_picks_cpp_on_cpu_and_records_it(cpp):
    x = _input(4, 500, 0.9)
    for comp in (SJLT(500, 64, seed=3, c=2), GraSS(500, 16, seed=3, blowup=2)):
        assert comp.backend_used is None
        out = comp(x)
        assert comp.backend_used == "cpp"
        torch.testing.assert_close(out, x @ comp.matrix(), **TOL)
    torch_comp = SJLT(500, 64, seed=3, c=2, backend="torch")
    torch_comp(x)
    assert torch_comp.backend_used == torch_comp.last_backend == "torch"


def test_backend_is_not_in_the_fingerprint():
    assert SJLT(50, 8, seed=1, backend="torch").fingerprint() == SJLT(50, 8, seed=1, backend="cpp").fingerprint()
    assert GraSS(50, 8, seed=1, backend="torch").fingerprint() == GraSS(50, 8, seed=1).fingerprint()


def test_configs_pass_the_backend_through():
    for name, cls in (("sjlt", SJLT), ("grass", GraSS)):
        node = OmegaConf.load(CONF / f"{name}.yaml")
        assert node.backend == "auto"
        comp = build_compressor(OmegaConf.merge(node, {"backend": "torch"}), in_dim=200, out_dim=16, seed=0)
        assert isinstance(comp, cls)
        comp(torch.randn(2, 200))
        assert comp.backend_used == "torch"


def test_unknown_or_impossible_backend_is_an_error(monkeypatch):
    with pytest.raises(GrassError, match="backend must be one of"):
        SJLT(50, 8, backend="cuda")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(GrassError, match="triton"):  # no CUDA here, and no interpreter asked for
        SJLT(50, 8, backend="triton")(torch.randn(2, 50))
    with pytest.raises(GrassError, match="CPU tensors only"):
        dispatch.resolve_backend("cpp", torch.device("cuda"))


def test_auto_on_cuda_uses_triton_when_importable_else_torch(monkeypatch):
    """Only the choice is checked here (no GPU needed): a CUDA device with and without triton."""
    monkeypatch.setattr(dispatch, "triton_module", lambda: (None, "ImportError: no triton"))
    assert dispatch.resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(GrassError, match="no triton"):
        dispatch.resolve_backend("triton", torch.device("cuda"))
    fake = type("FakeTriton", (), {"interpreting": staticmethod(lambda: False)})
    monkeypatch.setattr(dispatch, "triton_module", lambda: (fake, None))
    assert dispatch.resolve_backend("auto", torch.device("cuda")) == "triton"
    assert dispatch.resolve_backend("auto", torch.device("cpu")) == "cpp"


def test_triton_backend_through_the_compressor(triton_kernel):
    comp = SJLT(700, 64, seed=5, c=4, backend="triton")
    x = _input(3, 700, 0.9)
    torch.testing.assert_close(comp(x), x @ comp.matrix(), **TOL)
    assert comp.backend_used == "triton"


@pytest.fixture
def broken_cpp_build(monkeypatch):
    """The C++ build raises, as on a machine without a compiler; the real handle is restored afterwards."""
    def fail():
        raise RuntimeError("Ninja is required to load C++ extensions (simulated)")

    monkeypatch.setattr(sjlt_cpu, "_build", fail)
    sjlt_cpu.extension.cache_clear()
    yield
    sjlt_cpu.extension.cache_clear()


def test_failed_cpp_build_logs_once_and_falls_back_to_torch(broken_cpp_build, caplog):
    x = _input(3, 400, 0.5)
    with caplog.at_level(logging.WARNING):
        outs = []
        for _ in range(3):
            comp = SJLT(400, 32, seed=2, c=2)
            outs.append(comp(x))
            assert comp.backend_used == "torch"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Ninja is required" in warnings[0].getMessage()
    torch.testing.assert_close(outs[0], x @ comp.matrix(), **TOL)
    with pytest.raises(GrassError, match="could not be built"):
        SJLT(400, 32, backend="cpp")(x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_on_gpu_equals_reference(dtype):
    h, s, scale = _tables(4, 100_003, 512, torch.int32, int8_signs=True)
    x = _mixed_tiles(7, 100_003).to(dtype)
    out, path = dispatch.sjlt_project(x.cuda(), h.cuda(), s.cuda(), 512, scale, backend="auto")
    assert path == "triton"
    torch.testing.assert_close(out.cpu(), sjlt_reference(x.float(), h, s, 512, scale), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("b", [8, 3])
def test_cpp_nan_in_an_otherwise_zero_tile_reaches_the_output(cpp, b):
    """The all-zero-tile skip (vectorized test in the 8-row panels, scalar per row) must count NaN as
    nonzero, or a NaN gradient would vanish instead of poisoning its row."""
    h, s, scale = _tables(1, 4100, 16)
    x = _input(b, 4100, 0.0)
    x[:, 2048:4096] = 0
    x[1, 2050] = float("nan")
    out = cpp(x, h, s, 16, scale)
    expected = sjlt_dense(x, h, s, 16, scale)
    assert out[1].isnan().any() and torch.equal(out.isnan(), expected.isnan())
    torch.testing.assert_close(out, expected, equal_nan=True, **TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpp_low_precision_equals_its_float32_upcast_bit_for_bit(cpp, dtype):
    """Both conversions to fp32 are exact, so the vectorized bf16 loads (and the scalar fp16 ones) must give
    exactly what the same values in fp32 give, in panels and in single rows."""
    h, s, scale = _tables(2, 4501, 97, int8_signs=True)
    x = _mixed_tiles(11, 4501).to(dtype)
    assert torch.equal(cpp(x, h, s, 97, scale), cpp(x.float(), h, s, 97, scale))


# bf16 subnormals are fp32 subnormals, which flushing zeroes by design: only fp16 is checked with it on
@pytest.mark.parametrize("dtype,flush_denormal", [(torch.float16, False), (torch.bfloat16, False),
                                                  (torch.float16, True)])
def test_cpp_reads_every_16_bit_pattern_exactly(cpp, dtype, flush_denormal):
    """All 65536 fp16 / bf16 values (subnormals, infinities, NaNs included) through the vectorized panel loads:
    with identity buckets, + signs and scale 1 every output is one input, so y must be the exact upcast.
    With denormals-are-zero on, fp16 subnormals (normal numbers in fp32) must still come through."""
    values = torch.arange(-2**15, 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    x = values.reshape(8, -1).contiguous()  # one 8-row panel (one task: runs on this thread), 4 full tiles
    d = x.shape[1]
    h = torch.arange(d).unsqueeze(0)
    s = torch.ones(1, d)
    if flush_denormal and not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        out = cpp(x, h, s, d, 1.0)
    finally:
        torch.set_flush_denormal(False)
    expected = x.float()
    nan = expected.isnan()
    assert torch.equal(out.isnan(), nan)
    # 0 + (-0) is +0 in the accumulator: compare signed zeros as values
    assert torch.equal(out[~nan], expected[~nan])
