"""Measuring units: synthesis, mapping, gate-level simulation and energy, cached.

Every step's result is cached in ``<out>/cache/<sha256>.json``, keyed by
everything it depends on: the flow version, the unit's Verilog and boundary
wrapper, the Liberty contents, the clock period, and for energy the operand
stream.  A rerun with nothing changed reads the cache and takes seconds.
"""

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from fourbit.util.files import write_text_atomically

from . import gatesim, stimulus, synth
from . import units as units_mod
from .energy import DEFAULT_SLEW_NS, area_split, net_loads, netlist_energy
from .liberty import DONT_USE_PATTERN

__all__ = ["Context", "measure", "FLOW_ID"]

#: Version of the whole measurement flow (cache key component).
FLOW_ID = f"{synth.FLOW_VERSION}/energy-3/gatesim-4"


def _progress(msg):
    print(f"[report] {msg}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """What every unit's measurement shares.

    Attributes
    ----------
    out_dir : str
        Report directory (``cache/`` and ``designs/`` go under it).
    library : report.liberty.Library or None
    liberty_work : str or None
        The working copy Yosys reads.
    gemms : list of report.stimulus.Gemm
    stimulus_source : str
    macs : int
        MACs simulated per workload.
    clock_ns : float
    yosys_map : str or None
        Yosys for Liberty mapping (None: mapping unavailable).
    yosys_cmos : str or None
        Yosys for the technology-independent count.
    use_cache : bool
    clock_gating : bool
        Map flip-flop enables to integrated clock gates (:func:`report.synth.insert_clock_gates`).
    glitch : bool
        Also simulate with the cells' Liberty delays (glitch-aware activity, :func:`report.gatesim.output_delays`).
    step_workloads : dict
        Unit name -> extra workloads measured for the training-step energy
        (:mod:`report.step`), reported in the entry's ``step_energy`` (and
        ``step_energy_glitch``), not in its per-MAC figure.
    elements : dict
        Element workload -> port values (:func:`report.step.element_streams`).
    errors : list of str
    """

    out_dir: str
    library: object
    liberty_work: str | None
    gemms: list
    stimulus_source: str
    macs: int = 3000
    clock_ns: float = 10.0
    yosys_map: str | None = None
    yosys_cmos: str | None = None
    use_cache: bool = True
    clock_gating: bool = False
    glitch: bool = False
    step_workloads: dict = field(default_factory=dict)
    elements: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    _fresh: set = field(default_factory=set)

    def cache_path(self, key):
        return os.path.join(self.out_dir, "cache", key + ".json")

    def _path(self, parts):
        return self.cache_path(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest())

    def has(self, parts):
        """A cached result exists (always False with ``use_cache`` off, until stored)."""
        return os.path.isfile(self._path(parts)) and (self.use_cache or self._path(parts) in self._fresh)

    def load(self, parts):
        with open(self._path(parts)) as f:
            return json.load(f)

    def store(self, parts, value):
        path = self._path(parts)
        self._fresh.add(path)
        write_text_atomically(path, json.dumps(value), make_parents=True)

    def cached(self, parts, compute, label):
        path = self._path(parts)
        if self.has(parts):
            try:
                with open(path) as f:
                    value = json.load(f)
                if path not in self._fresh:
                    _progress(f"{label}: cached")
                return value
            except (OSError, ValueError):
                pass
        t0 = time.monotonic()
        _progress(f"{label} ...")
        value = compute()
        _progress(f"{label}: done in {time.monotonic() - t0:.1f} s")
        self.store(parts, value)
        return value


def _sources_digest(unit, wrapper):
    h = hashlib.sha256()
    for src in unit.sources:
        with open(src, "rb") as f:
            h.update(f.read())
    h.update(wrapper.encode())
    return h.hexdigest()


def _stimulus(unit, workload, ctx):
    if workload == "random":
        values = stimulus.random_operands(unit.inputs, ctx.macs)
    elif workload in ctx.elements:
        values = ctx.elements[workload]
    elif unit.array:
        pe, rows, cols = unit.array
        cycles = max(ctx.macs // (rows * cols), 8 * rows)
        if unit.extra.get("dataflow") == "weight-stationary":
            depth = int(unit.extra["depth"])
            values = stimulus.ws_array_stream(pe, rows, cols, depth, workload, ctx.gemms, max(cycles, 4 * depth))
        else:
            values = stimulus.array_stream(pe, rows, cols, workload, ctx.gemms, cycles)
    else:
        values = stimulus.stream(unit.kind, workload, ctx.gemms, ctx.macs)
    missing = [n for n, _ in unit.inputs if n not in values]
    if missing:
        raise ValueError(f"stimulus for {unit.name} lacks port(s) {', '.join(missing)}")
    valid = values.get("valid", np.ones(len(next(iter(values.values()))), np.int64))
    return np.stack([values[n] for n, _ in unit.inputs], axis=1), np.asarray(valid, np.int64)


def _warmup(unit):
    """Cycles before toggle counting: registers leave x, an array's skew chains fill."""
    return 4 + (unit.array[1] + unit.array[2] if unit.array else 0)


def measure(unit, ctx):
    """Measure one unit; returns its report entry (dict).

    Failures of one step are recorded in the entry's ``errors`` and leave the
    step's figures ``None``; they never stop the other steps or units.
    """
    design_dir = os.path.join(ctx.out_dir, "designs", unit.name)
    os.makedirs(design_dir, exist_ok=True)
    wrapper = units_mod.boundary_verilog(unit)
    wrapper_path = os.path.join(design_dir, "bound.v")
    units_mod._write(wrapper_path, wrapper)
    sources = [*unit.sources, wrapper_path]
    digest = _sources_digest(unit, wrapper)
    entry = {
        "kind": unit.kind,
        "description": unit.description,
        "pe_count": unit.pe_count,
        "array": list(unit.array) if unit.array else None,
        "dataflow": unit.extra.get("dataflow"),
        "transistors": None,
        "area_um2": None,
        "area_registers_um2": None,
        "area_logic_um2": None,
        "delay_ns": None,
        "cells": None,
        "energy_pj_per_mac": None,
        "energy": {},
        "errors": [],
    }
    cmos_key = {"step": "cmos", "flow": FLOW_ID, "design": digest, "top": unit.top, "yosys": ctx.yosys_cmos}
    mapped = None
    if ctx.library is not None and ctx.yosys_map:
        map_key = {
            "step": "map",
            "flow": FLOW_ID,
            "design": digest,
            "top": unit.top,
            "liberty": ctx.library.sha256,
            "dont_use": DONT_USE_PATTERN,
            "clock_ns": ctx.clock_ns,
            "clock_gating": ctx.clock_gating,
        }
        both = ctx.yosys_cmos == ctx.yosys_map and not ctx.clock_gating and not ctx.has(cmos_key)

        def do_map():
            m = synth.map_liberty(
                sources,
                unit.top,
                ctx.liberty_work,
                clock_ns=ctx.clock_ns,
                yosys=ctx.yosys_map,
                with_cmos=both,
                clock_gating=ctx.clock_gating,
                log_dir=design_dir,
            )
            if m.cmos is not None:
                ctx.store(cmos_key, m.cmos)
            area = area_split(m.netlist, ctx.library)
            reg, logic = area["registers"], area["arithmetic"] + area["control"]
            return {
                "area_um2": m.area_um2,
                "delay_ns": m.delay_ns,
                "cells": m.cells,
                "area_registers_um2": reg,
                "area_logic_um2": logic,
                "netlist": m.netlist,
            }

        try:
            mapped = ctx.cached(
                map_key,
                do_map,
                f"{unit.name}: synthesis, Liberty mapping ({'clockgate + ' if ctx.clock_gating else ''}dfflibmap + abc)"
                + (" and cmos transistor count" if both else ""),
            )
        except synth.YosysError as e:
            entry["errors"].append(str(e))
    if ctx.yosys_cmos:
        try:
            cmos = ctx.cached(
                cmos_key,
                lambda: synth.transistor_count(sources, unit.top, yosys=ctx.yosys_cmos, log_dir=design_dir),
                f"{unit.name}: transistor count (yosys stat -tech cmos)",
            )
            entry["transistors"] = cmos["transistors"]
        except synth.YosysError as e:
            entry["errors"].append(str(e))
    if mapped is None:
        return entry
    for k in ("area_um2", "delay_ns", "area_registers_um2", "area_logic_um2"):
        entry[k] = mapped[k]
    # the three-way split from the cached netlist (a cache made before the split still serves)
    area = area_split(mapped["netlist"], ctx.library)
    entry["area_arithmetic_um2"], entry["area_control_um2"] = area["arithmetic"], area["control"]
    entry["cells"] = sum(mapped["cells"].values())
    extra = tuple(w for w in ctx.step_workloads.get(unit.name, ()) if w not in unit.workloads)
    if not unit.workloads and not extra:
        entry["errors"].append(f"no operand-stream model for kind {unit.kind!r}: energy not measured")
        return entry
    warmup = _warmup(unit)
    jobs = {}  # workload -> (cache key, stimulus, valid flags)
    for workload in unit.workloads + extra:
        try:
            stim, valid = _stimulus(unit, workload, ctx)
        except ValueError as e:
            entry["errors"].append(str(e))
            continue
        key = dict(
            map_key,
            step="energy",
            stimulus=hashlib.sha256(str(stim.tolist()).encode()).hexdigest(),
            ports=unit.inputs,
            slew=DEFAULT_SLEW_NS,
            warmup=warmup,
        )
        jobs[workload] = (key, stim, valid)
    todo, keys = [], set()
    for w, (key, _, _) in jobs.items():
        # a per-op workload can be the very stream of a training workload (fwd = forward): simulated once
        digest = json.dumps(key, sort_keys=True)
        if not _has_split(ctx, key) and digest not in keys:
            todo.append(w)
            keys.add(digest)
    if todo:
        # one compilation of the netlist serves every workload of the same length
        lengths = {len(jobs[w][1]) for w in todo}
        label = (
            f"{unit.name}: gate-level simulation + energy, {', '.join(todo)} "
            f"({', '.join(str(n) for n in sorted(lengths))} cycles each)"
        )
        t0 = time.monotonic()
        _progress(f"{label} ...")
        try:
            for n in sorted(lengths):
                group = [w for w in todo if len(jobs[w][1]) == n]
                toggles = gatesim.simulate_many(
                    mapped["netlist"],
                    unit.top,
                    ctx.library,
                    unit.inputs,
                    [jobs[w][1] for w in group],
                    period_ns=ctx.clock_ns,
                    warmup=warmup,
                )
                for w, t in zip(group, toggles):
                    e = netlist_energy(mapped["netlist"], ctx.library, t)
                    # MACs whose operands entered during the window (one per PE per valid cycle)
                    macs = int(jobs[w][2][warmup:].sum()) * unit.pe_count
                    if macs == 0:
                        raise ValueError(f"{w}: no valid MAC in the measurement window")
                    per_mac = {k: v * e.cycles / macs for k, v in e.per_cycle().items()}
                    ctx.store(jobs[w][0], dict(per_mac, cycles=e.cycles, macs=macs, outputs=_digest(t.outputs)))
        except (gatesim.SimError, ValueError) as e:
            entry["errors"].append(str(e))
        _progress(f"{label}: done in {time.monotonic() - t0:.1f} s")
    if ctx.glitch:
        _glitch_energy(unit, ctx, mapped, jobs, warmup, entry)
    totals = []
    for workload, (key, _, _) in jobs.items():
        if not ctx.has(key):
            continue
        energy = ctx.load(key)
        if workload not in todo:
            _progress(f"{unit.name}: energy, {workload}: cached")
        if workload in extra:
            entry.setdefault("step_energy", {})[workload] = _workload_energy(energy)
            continue
        entry["energy"][workload] = _workload_energy(energy)
        totals.append(energy["total_pj"])
    if totals:
        entry["energy_pj_per_mac"] = float(np.mean(totals))
    glitchy = entry.get("energy_glitch", {})
    for workload in extra:
        if workload in glitchy:
            entry.setdefault("step_energy_glitch", {})[workload] = glitchy.pop(workload)
    if extra and "energy_glitch" in entry:
        entry.pop("energy_glitch_pj_per_mac", None)
        if glitchy:
            entry["energy_glitch_pj_per_mac"] = float(np.mean([e["pj_per_mac"] for e in glitchy.values()]))
    return entry


def _workload_energy(energy):
    """A cached energy as an entry's per-workload figures."""
    keys = ("registers_pj", "logic_pj", "arithmetic_pj", "control_pj", "switching_pj", "internal_pj", "leakage_pj")
    return {
        "pj_per_mac": energy["total_pj"],
        **{k: energy[k] for k in keys},
        "cycles": energy["cycles"],
        "macs": energy["macs"],
    }


def _has_split(ctx, key):
    """A cached energy with the registers / arithmetic / control split (an older entry lacks it: recomputed)."""
    if not ctx.has(key):
        return False
    try:
        return "arithmetic_pj" in ctx.load(key)
    except (OSError, ValueError):
        return False


def _digest(outputs):
    """Hash of a simulation's sampled outputs (to compare a glitch-aware run with the zero-delay one)."""
    return hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()


def glitch_period_ns(delay_ns, clock_ns):
    """Clock period of a glitch-aware simulation: the flow's clock, or 1.5x the unit's
    critical path plus 2 ns (clock-to-Q, setup, wire loads ABC's estimate leaves out) when longer."""
    return max(clock_ns, float(np.ceil(1.5 * (delay_ns or 0.0) + 2.0)))


def _glitch_energy(unit, ctx, mapped, jobs, warmup, entry):
    """The glitch-aware energy of every workload, into ``entry["energy_glitch"]`` (cached like the rest).

    The netlist runs with the cells' Liberty delays at a period the unit's
    logic settles in (:func:`glitch_period_ns`); its sampled outputs must equal
    the zero-delay run's, else the run is reported as a timing failure.
    """
    period = glitch_period_ns(mapped["delay_ns"], ctx.clock_ns)
    entry["glitch_period_ns"] = period
    # gated clocks ideal (gatesim.output_delays): part of the key where there are clock gates
    gates = any(ctx.library.cell(c["type"]).clock_gating for c in mapped["netlist"]["cells"].values())
    ideal = {"ideal_gated_clock": True} if gates else {}
    todo, keys = [], set()
    for workload, (key, stim, valid) in jobs.items():
        gkey = dict(key, step="energy-glitch", period_ns=period, **ideal)
        digest = json.dumps(gkey, sort_keys=True)
        if _has_split(ctx, gkey):
            _progress(f"{unit.name}: glitch-aware energy, {workload}: cached")
        elif ctx.has(key) and digest not in keys:
            todo.append((workload, gkey, stim, valid))
            keys.add(digest)
    if todo:
        names = ", ".join(w for w, *_ in todo)
        label = f"{unit.name}: glitch-aware gate-level simulation, {names} ({period:g} ns clock)"
        t0 = time.monotonic()
        _progress(f"{label} ...")
        loads = net_loads(mapped["netlist"], ctx.library)
        delays = gatesim.output_delays(mapped["netlist"], ctx.library, loads, DEFAULT_SLEW_NS)
        try:
            for workload, gkey, stim, valid in todo:
                (t,) = gatesim.simulate_many(
                    mapped["netlist"],
                    unit.top,
                    ctx.library,
                    unit.inputs,
                    [stim],
                    period_ns=period,
                    warmup=warmup,
                    delays=delays,
                )
                if _digest(t.outputs) != ctx.load(jobs[workload][0]).get("outputs"):
                    raise ValueError(
                        f"{workload}: the glitch-aware simulation's outputs differ from the zero-delay one's "
                        f"at a {period:g} ns clock (a path longer than the period)"
                    )
                e = netlist_energy(mapped["netlist"], ctx.library, t)
                macs = int(valid[warmup:].sum()) * unit.pe_count
                per_mac = {k: v * e.cycles / macs for k, v in e.per_cycle().items()}
                ctx.store(gkey, dict(per_mac, cycles=e.cycles, macs=macs))
        except (gatesim.SimError, ValueError) as e:
            entry["errors"].append(f"glitch-aware: {e}")
        _progress(f"{label}: done in {time.monotonic() - t0:.1f} s")
    entry["energy_glitch"] = {}
    for workload, (key, _, _) in jobs.items():
        gkey = dict(key, step="energy-glitch", period_ns=period, **ideal)
        if ctx.has(gkey):
            energy = ctx.load(gkey)
            entry["energy_glitch"][workload] = _workload_energy(energy)
    if entry["energy_glitch"]:
        entry["energy_glitch_pj_per_mac"] = float(np.mean([e["pj_per_mac"] for e in entry["energy_glitch"].values()]))
