"""Shared fixtures of the report tests: the SKY130 Liberty from ../shared."""

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKY130 = ROOT.parent / "shared" / "pdk" / "sky130_fd_sc_hd" / "sky130_fd_sc_hd__tt_025C_1v80.lib.gz"


@pytest.fixture(scope="session")
def sky130():
    """The SKY130 HD typical-corner Library (skips when ../shared is absent)."""
    if not SKY130.is_file():
        pytest.skip(f"{SKY130} not present")
    from report.liberty import Library

    return Library(SKY130)


@pytest.fixture(scope="session")
def sky130_work(sky130, tmp_path_factory):
    """Path of the dont_use working copy of the SKY130 Liberty."""
    path = tmp_path_factory.mktemp("liberty") / "sky130_work.lib"
    sky130.write_working_copy(str(path))
    return str(path)


def need(tool):
    if not shutil.which(tool) and not os.path.exists(tool):
        pytest.skip(f"{tool} not installed")
