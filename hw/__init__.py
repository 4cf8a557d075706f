"""Amaranth HDL for fourbit: processing elements, MAC arrays and the training datapath.

``hw`` owns the hardware descriptions. It takes number-format definitions
(codes, product rules) from :mod:`golden.formats` and turns them into logic
through :mod:`hw.arith`; it never imports the golden training model.
"""
