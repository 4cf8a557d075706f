"""Device PLLs for the engine clock: divider search (as ``icepll``/``ecppll`` do) and the Amaranth instance.

:func:`plan_pll` finds, for a reference clock and a requested output
frequency, the PLL dividers whose output is nearest to the request within the
device's documented operating ranges, and returns a :class:`PLLConfig` that
carries the achieved frequency (the engine's UART divisor and nextpnr's clock
constraint are computed from it, never from the request) and instantiates the
primitive.

* **iCE40** ``SB_PLL40_PAD``, ``FEEDBACK_PATH = "SIMPLE"`` (iCE40 sysCLOCK PLL
  user guide, FPGA-TN-02052): ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) *
  2**DIVQ)`` with ``f_in / (DIVR + 1)`` (the phase detector) in 10-133 MHz,
  the VCO ``f_in * (DIVF + 1) / (DIVR + 1)`` in 533-1066 MHz and ``f_out`` in
  16-275 MHz; ``FILTER_RANGE`` from the phase detector frequency as
  ``icepll`` sets it.
* **ECP5** ``EHXPLLL``, feedback from ``CLKOP`` (ECP5 sysCLOCK user guide,
  FPGA-TN-02200): ``f_out = f_in * CLKFB_DIV / CLKI_DIV``, the VCO ``f_out *
  CLKOP_DIV`` in 400-800 MHz, the phase detector ``f_in / CLKI_DIV`` of at
  least 3.125 MHz, ``f_out`` in 10-400 MHz; the analogue settings
  ``ecppll`` writes.

Ties between divider sets of the same output frequency go, as in the two
tools, on ECP5 to the VCO nearest 600 MHz, then (both families) to the first
in the search order (smallest reference divider, then feedback divider).
"""

import dataclasses

import numpy as np
from amaranth.hdl import Const, Instance

__all__ = ["PLLConfig", "plan_pll"]

_MHZ = 1e6


@dataclasses.dataclass(frozen=True)
class PLLConfig:
    """Dividers of one device PLL and the frequency they make.

    Attributes
    ----------
    family : str
        ``ice40`` or ``ecp5``.
    in_hz, requested_hz, out_hz : float
        Reference clock, requested and achieved output frequency.
    vco_hz : float
        The VCO frequency.
    dividers : dict
        The primitive's divider parameters (``DIVR``/``DIVF``/``DIVQ``/``FILTER_RANGE``
        or ``CLKI_DIV``/``CLKFB_DIV``/``CLKOP_DIV``).
    """

    family: str
    in_hz: float
    requested_hz: float
    out_hz: float
    vco_hz: float
    dividers: dict

    def describe(self):
        """The configuration as report fields (MHz)."""
        return {
            "primitive": "SB_PLL40_PAD" if self.family == "ice40" else "EHXPLLL",
            "in_mhz": round(self.in_hz / _MHZ, 4),
            "requested_mhz": round(self.requested_hz / _MHZ, 4),
            "achieved_mhz": round(self.out_hz / _MHZ, 4),
            "vco_mhz": round(self.vco_hz / _MHZ, 4),
            **self.dividers,
        }

    def instance(self, *, clk_in, clk_out, lock):
        """The Amaranth ``Instance`` of the primitive: ``clk_out`` output, ``lock`` high once locked.

        ``clk_in`` is the reference: on iCE40 the clock pin itself (an
        ``IOPort``; the PAD PLL takes its reference from its own pin, which
        then serves nothing else), on ECP5 a clock signal.
        """
        d = self.dividers
        if self.family == "ice40":
            return Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_PLLOUT_SELECT="GENCLK",
                p_DIVR=Const(d["DIVR"], 4),
                p_DIVF=Const(d["DIVF"], 7),
                p_DIVQ=Const(d["DIVQ"], 3),
                p_FILTER_RANGE=Const(d["FILTER_RANGE"], 3),
                i_PACKAGEPIN=clk_in,
                i_RESETB=Const(1),
                i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk_out,
                o_LOCK=lock,
            )
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.in_hz / _MHZ:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.out_hz / _MHZ:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=d["CLKI_DIV"],
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=d["CLKOP_DIV"],
            p_CLKOP_CPHASE=(d["CLKOP_DIV"] - 1) // 2,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=d["CLKFB_DIV"],
            i_RST=Const(0),
            i_STDBY=Const(0),
            i_CLKI=clk_in,
            i_CLKFB=clk_out,
            i_PHASESEL0=Const(0),
            i_PHASESEL1=Const(0),
            i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1),
            i_PHASELOADREG=Const(1),
            i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_CLKOP=clk_out,
            o_LOCK=lock,
        )


def _ice40_filter_range(pfd_hz):
    # icepll's table: the loop filter for the phase detector frequency.
    return int(np.searchsorted([17e6, 26e6, 44e6, 66e6, 101e6], pfd_hz, side="right") + 1)


def _nearest(out_hz, valid, requested_hz, vco_hz=None, vco_centre_hz=None):
    """Flat index of the valid candidate nearest to the request, or None.

    Ties go to the VCO nearest ``vco_centre_hz`` when given, then to the first
    candidate in the search order.
    """
    error = np.where(valid, np.abs(out_hz - requested_hz), np.inf).ravel()
    if not np.isfinite(error.min()):
        return None
    tied = error == error.min()
    if vco_centre_hz is not None:
        spread = np.where(tied, np.abs(vco_hz.ravel() - vco_centre_hz), np.inf)
        tied = spread == spread.min()
    return int(np.argmax(tied))


def plan_pll(family, in_hz, requested_hz):
    """The :class:`PLLConfig` whose output is nearest to ``requested_hz`` from a ``in_hz`` reference.

    Raises
    ------
    ValueError
        An unknown family, a reference outside the PLL's input range, or a
        request outside its output range (the message gives the range).
    """
    if isinstance(requested_hz, bool) or not np.isfinite(requested_hz) or requested_hz <= 0:
        raise ValueError(f"the PLL clock must be a positive frequency, not {requested_hz!r}")
    if family == "ice40":
        low, high = 16e6, 275e6
        divr, divf, divq = np.meshgrid(np.arange(16), np.arange(128), np.arange(1, 7), indexing="ij")
        pfd = in_hz / (divr + 1)
        vco = pfd * (divf + 1)
        out = vco / 2.0**divq
        valid = (pfd >= 10e6) & (pfd <= 133e6) & (vco >= 533e6) & (vco <= 1066e6) & (out >= low) & (out <= high)
    elif family == "ecp5":
        low, high = 10e6, 400e6
        clki, clkfb, clkop = np.meshgrid(np.arange(1, 129), np.arange(1, 81), np.arange(1, 129), indexing="ij")
        pfd = in_hz / clki
        out = pfd * clkfb
        vco = out * clkop
        valid = (pfd >= 3.125e6) & (pfd <= 400e6) & (vco >= 400e6) & (vco <= 800e6) & (out >= low) & (out <= high)
    else:
        raise ValueError(f"no PLL for FPGA family {family!r}")
    if not low <= requested_hz <= high:
        raise ValueError(
            f"the {family} PLL makes {low / _MHZ:g} to {high / _MHZ:g} MHz, not {requested_hz / _MHZ:g} MHz"
        )
    # ecppll prefers, among equally near outputs, the VCO nearest 600 MHz (mid-range); icepll the first found.
    best = _nearest(out, valid, requested_hz, vco, 600e6 if family == "ecp5" else None)
    if best is None:
        raise ValueError(f"the {family} PLL cannot make {requested_hz / _MHZ:g} MHz from {in_hz / _MHZ:g} MHz")
    index = np.unravel_index(best, out.shape)
    if family == "ice40":
        dividers = {
            "DIVR": int(divr[index]),
            "DIVF": int(divf[index]),
            "DIVQ": int(divq[index]),
            "FILTER_RANGE": _ice40_filter_range(float(pfd[index])),
        }
    else:
        dividers = {"CLKI_DIV": int(clki[index]), "CLKFB_DIV": int(clkfb[index]), "CLKOP_DIV": int(clkop[index])}
    return PLLConfig(
        family=family,
        in_hz=float(in_hz),
        requested_hz=float(requested_hz),
        out_hz=float(out[index]),
        vco_hz=float(vco[index]),
        dividers=dividers,
    )
