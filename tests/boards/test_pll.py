"""Device PLL clocks: divider search as icepll/ecppll, the instance and its constraint, the simulation bypass."""

import gc

import pytest

from boards.platforms import BAUD, PLL_CLOCK_NET, BoardTop, ClockedEngine
from boards.pll import plan_pll
from boards.synth import main as synth_main
from boards.synth import prepare
from rtl_gen.generate import to_verilog


@pytest.mark.parametrize(
    "in_mhz,out_mhz,dividers,achieved_mhz",
    [
        # icepll's outputs as published with designs that use them.
        (12, 96, (0, 63, 3, 1), 96.0),
        (48, 60, (0, 19, 4, 4), 60.0),
        (48, 100, (2, 49, 3, 1), 100.0),
        (48, 150, (1, 24, 2, 2), 150.0),
        (96, 16, (2, 31, 6, 3), 16.0),
        (100, 16, (3, 40, 6, 2), 16.0156),
    ],
)
def test_ice40_dividers_as_icepll(in_mhz, out_mhz, dividers, achieved_mhz):
    config = plan_pll("ice40", in_mhz * 1e6, out_mhz * 1e6)
    d = config.dividers
    assert (d["DIVR"], d["DIVF"], d["DIVQ"], d["FILTER_RANGE"]) == dividers
    assert config.describe()["achieved_mhz"] == achieved_mhz


def test_ecp5_dividers_as_ecppll():
    # `ecppll -i 12 -o 16`: CLKI_DIV 3, CLKFB_DIV 4, CLKOP_DIV 37 (VCO 592 MHz, the nearest 600 of the exact ones).
    config = plan_pll("ecp5", 12e6, 16e6)
    assert config.dividers == {"CLKI_DIV": 3, "CLKFB_DIV": 4, "CLKOP_DIV": 37}
    assert (config.out_hz, config.vco_hz) == (16e6, 592e6)
    # An output the PLL cannot make exactly: from 25 MHz the phase detector
    # (>= 3.125 MHz) allows CLKI_DIV <= 8, and the nearest of 25 * k / n is 125 MHz.
    near = plan_pll("ecp5", 25e6, 123.4567e6)
    assert near.out_hz == 125e6 == 25e6 * near.dividers["CLKFB_DIV"] / near.dividers["CLKI_DIV"]
    assert near.describe()["requested_mhz"] == 123.4567


@pytest.mark.parametrize(
    "family,mhz,message",
    [
        ("ice40", 12, "the ice40 PLL makes 16 to 275 MHz, not 12 MHz"),
        ("ecp5", 500, "the ecp5 PLL makes 10 to 400 MHz, not 500 MHz"),
        ("gowin", 50, "no PLL for FPGA family 'gowin'"),
    ],
)
def test_out_of_range(family, mhz, message):
    with pytest.raises(ValueError, match=message):
        plan_pll(family, 12e6, mhz * 1e6)


def test_synth_refuses_bad_clocks(capsys):
    for args, message in [
        (["--clock-mhz", "5"], "the ice40 PLL makes 16 to 275 MHz, not 5 MHz"),
        (["--clock-mhz", "-3"], "expected a positive frequency in MHz, not '-3'"),
        (["--clock-mhz", "nan"], "expected a positive frequency in MHz, not 'nan'"),
        (["--clock-mhz", "30", "--clock-div", "2"], "give either a clock divider or a PLL clock"),
    ]:
        try:
            status = synth_main(["--board", "icebreaker", "--rows", "1", "--cols", "1", *args])
        except SystemExit as exit_:
            status = exit_.code
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    "board,mhz,primitive,constraint",
    [
        ("icebreaker", 30, "SB_PLL40_PAD", "set_frequency core.engine_clk 30.0"),
        ("ulx3s", 90, "EHXPLLL", 'FREQUENCY NET "core.engine_clk" 90000000.0 HZ;'),
    ],
)
def test_pll_build_plan(board, mhz, primitive, constraint):
    """The PLL is instantiated with the planned dividers and its output constrained to the achieved frequency."""
    job = prepare(board, pe="int4", rows=1, cols=1, clock_mhz=mhz)
    pll = job.clock["pll"]
    assert (pll["primitive"], pll["achieved_mhz"], job.engine_clock) == (primitive, mhz, PLL_CLOCK_NET)
    rtlil = job.files["top.il"]
    assert f"cell \\{primitive} " in rtlil
    if primitive == "EHXPLLL":
        for name in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"):
            assert f"parameter \\{name} {pll[name]}\n" in rtlil
    else:
        assert f"parameter \\DIVF 7'{pll['DIVF']:07b}\n" in rtlil
    constraints = job.files["top.pcf" if board == "icebreaker" else "top.lpf"]
    assert constraint in constraints


def test_simulation_bypasses_the_pll():
    """Without a platform the PLL engine is the board-clock engine at the PLL's frequency: the same Verilog.

    The cocotb end-to-end tests of the board-clock engine therefore cover it;
    only the PLL primitive and its power-on reset are left to the FPGA build.
    """
    config = plan_pll("ice40", 12e6, 30e6)
    with_pll = ClockedEngine(kind="int4", rows=2, cols=3, board_hz=12e6, depth=8, pll=config)
    plain = ClockedEngine(kind="int4", rows=2, cols=3, board_hz=30e6, depth=8)
    assert with_pll.engine.divisor == plain.engine.divisor == round(30e6 / BAUD)
    assert to_verilog(with_pll, "gemm_engine") == to_verilog(plain, "gemm_engine")


# The refused objects are never elaborated (Amaranth warns about that).
@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_pll_excludes_a_divider():
    config = plan_pll("ecp5", 25e6, 90e6)
    with pytest.raises(ValueError, match="a PLL clock excludes clock_div 2"):
        BoardTop(kind="int4", rows=1, cols=1, clock_div=2, pll=config)
    with pytest.raises(TypeError, match=r"pll must be a boards\.pll\.PLLConfig"):
        ClockedEngine(kind="int4", rows=1, cols=1, board_hz=25e6, pll=90e6)
    gc.collect()  # the refused objects' warnings, here and not in a later test
