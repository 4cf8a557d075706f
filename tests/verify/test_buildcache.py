"""verify.buildcache: a build is reused only after it completed with the same stamp."""

import pytest

from verify.buildcache import cached_build


def test_miss_then_hit_then_new_stamp(tmp_path):
    with cached_build(tmp_path / "b", "one") as stale:
        assert stale
    with cached_build(tmp_path / "b", "one") as stale:
        assert not stale
    with cached_build(tmp_path / "b", "two") as stale:
        assert stale
    assert (tmp_path / "b" / "stamp").read_text() == "two"


def test_failed_build_is_not_cached(tmp_path):
    with pytest.raises(RuntimeError):
        with cached_build(tmp_path, "one") as stale:
            assert stale
            raise RuntimeError("compiler failed")
    assert not (tmp_path / "stamp").exists()
    with cached_build(tmp_path, "one") as stale:
        assert stale
