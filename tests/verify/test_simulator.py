"""verify.simulator: one HDL build layer (a hand-written counter on Icarus, so each build takes a second)."""

import pathlib

import pytest

from verify.simulator import SIMULATORS, BuildFailed, HDLBuild, SimulationFailed, check_simulator

COUNTER = """\
module counter (input wire clk, input wire rst, output reg [3:0] count);
    always @(posedge clk) count <= rst ? 4'd0 : count + 4'd1;
endmodule
"""
TB = "tests.verify.counter_tb"


def counter(directory, **options):
    return HDLBuild(toplevel="counter", sim="icarus", directory=directory, verilog=COUNTER, **options)


def counting(cycles, expect=None):
    return {
        "FOURBIT_COUNTER_CYCLES": str(cycles),
        "FOURBIT_COUNTER_EXPECT": str(cycles % 16 if expect is None else expect),
    }


def test_build_and_pass(tmp_path):
    build = counter(tmp_path / "b")
    result = build.test(TB, name="run", env=counting(20))
    assert result.passed and (result.tests, result.failed, result.skipped) == (2, 0, 0)
    assert result.results == tmp_path / "b" / "run.xml" and result.log == tmp_path / "b" / "run.log"
    assert (tmp_path / "b" / "counter.v").read_text() == COUNTER
    assert (tmp_path / "b" / "build.log").exists() and build.built
    # A skipped test case is counted, not failed.
    result = build.test(TB, env={**counting(3), "FOURBIT_COUNTER_SKIP": "1"}, test_dir=tmp_path / "run")
    assert result.passed and result.skipped == 1 and result.results == tmp_path / "run" / "sim.xml"


def test_stamped_build_is_cached_until_the_stamp_changes(tmp_path):
    first = counter(tmp_path, stamp="one")
    assert first.ensure() is True and first.ensure() is False and first.built
    model = first.sim_dir / "sim.vvp"
    compiled = model.stat().st_mtime_ns
    second = counter(tmp_path, stamp="one")  # e.g. another process: the disk cache hits
    assert second.ensure() is False and not second.built
    assert model.stat().st_mtime_ns == compiled
    assert second.test(TB, env=counting(5)).passed
    third = counter(tmp_path, stamp="two")
    assert third.ensure() is True and third.built
    assert model.stat().st_mtime_ns != compiled


def test_build_options_are_part_of_the_cache_key(tmp_path):
    with pytest.raises(ValueError, match="no stamp"):
        counter(tmp_path).cache_key()
    icarus = counter(tmp_path, stamp="s")
    verilator = HDLBuild(toplevel="counter", sim="verilator", directory=tmp_path, verilog=COUNTER, stamp="s")
    fast = HDLBuild(
        toplevel="counter", sim="verilator", directory=tmp_path, verilog=COUNTER, stamp="s", x_assign="fast"
    )
    keys = {icarus.cache_key(), verilator.cache_key(), fast.cache_key(), counter(tmp_path, stamp="t").cache_key()}
    assert len(keys) == 4
    assert fast.build_args() == ["--x-assign", "fast", "--x-initial", "fast"]
    ports_only = HDLBuild(
        toplevel="counter",
        sim="verilator",
        directory=tmp_path,
        verilog=COUNTER,
        public_ports=("clk", "rst", "count"),
        verilator_args=("-Wno-fatal",),
    )
    assert ports_only.build_args() == ["--no-public-flat-rw", "-Wno-fatal"]
    assert icarus.build_args() == []  # Icarus takes none of the Verilator options


def test_failing_test_module_is_a_clear_error(tmp_path, monkeypatch):
    build = counter(tmp_path)
    with pytest.raises(SimulationFailed, match=r"counter_tb on counter \(icarus\): 1 of 2 tests failed") as error:
        build.test(TB, name="wrong", env=counting(7, expect=3))
    result = error.value.result
    assert not result.passed and result.failed == 1 and str(result.log) in str(error.value)
    assert "count 7 after 7 cycles, expected 3" in result.log_tail()
    # check=False hands the failed result back instead.
    assert build.test(TB, name="wrong", env=counting(7, expect=3), check=False).failed == 1
    # Outside pytest the runner does not exit on failing tests: the results file still tells.
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    result = build.test(TB, name="outside", env=counting(7, expect=3), check=False)
    assert result.exit_code == 0 and result.failed == 1 and not result.passed


def test_missing_module_and_broken_verilog(tmp_path):
    build = counter(tmp_path / "ok")
    result = build.test("tests.verify.no_such_tb", env=counting(1), check=False)
    assert not result.passed
    broken = HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path / "bad", verilog="module counter(;\n")
    with pytest.raises(BuildFailed, match=r"building counter for icarus failed") as error:
        broken.ensure()
    assert error.value.log == tmp_path / "bad" / "build.log"


def test_verilog_files_and_lazy_text(tmp_path):
    source = tmp_path / "counter_src.v"
    source.write_text(COUNTER)
    from_files = HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path / "f", verilog=[source])
    assert from_files.source == source and from_files.test(TB, env=counting(2)).passed
    calls = []

    def generate():
        calls.append(1)
        return COUNTER

    lazy = HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path / "l", verilog=generate, stamp="x")
    lazy.ensure()
    HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path / "l", verilog=generate, stamp="x").ensure()
    assert calls == [1]  # generated for the compilation only, not for the cache hit


def test_arguments_checked_eagerly(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown simulator 'xsim' \(choose from icarus, verilator\)$"):
        HDLBuild(toplevel="counter", sim="xsim", directory=tmp_path, verilog=COUNTER)
    assert check_simulator(SIMULATORS[0]) == "icarus"
    with pytest.raises(ValueError, match="toplevel"):
        HDLBuild(toplevel="not a name", sim="icarus", directory=tmp_path, verilog=COUNTER)
    with pytest.raises(ValueError, match="empty"):
        HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path, verilog="  ")
    with pytest.raises(FileNotFoundError, match="no Verilog file"):
        HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path, verilog=[pathlib.Path(tmp_path / "none.v")])
    with pytest.raises(TypeError, match="verilog"):
        HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path, verilog=42)
    with pytest.raises(ValueError, match="x_assign"):
        HDLBuild(toplevel="counter", sim="verilator", directory=tmp_path, verilog=COUNTER, x_assign="slow")
    with pytest.raises(TypeError, match="verilator_args"):
        HDLBuild(toplevel="counter", sim="verilator", directory=tmp_path, verilog=COUNTER, verilator_args="-Wall")
    with pytest.raises(TypeError, match="stamp"):
        HDLBuild(toplevel="counter", sim="icarus", directory=tmp_path, verilog=COUNTER, stamp=1)
    with pytest.raises(TypeError):
        HDLBuild("counter", "icarus", tmp_path, COUNTER)  # keyword-only
