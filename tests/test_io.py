import os
import stat

from kerasbn._io import atomic_path, write_json, write_text


def test_results_get_normal_permissions_and_no_temp_files(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.md", "x")
        write_json(tmp_path / "b.json", {"k": 1})
    finally:
        os.umask(old)
    for name in ("a.md", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.md", "b.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old")
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    except RuntimeError:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
