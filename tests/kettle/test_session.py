from pathlib import Path

import pytest

from kettle import session


@pytest.fixture
def fake_cgroup(monkeypatch, tmp_path):
    """Point the cgroup reader at files in tmp_path."""
    real_path = Path

    def fake(p):
        p = str(p)
        if p.startswith("/sys/fs/cgroup/"):
            return real_path(tmp_path / p.removeprefix("/sys/fs/cgroup/"))
        return real_path(p)

    monkeypatch.setattr(session, "Path", fake)
    monkeypatch.setattr(session.os, "sched_getaffinity", lambda pid: set(range(8)))
    return tmp_path


def test_affinity_when_no_quota(fake_cgroup):
    (fake_cgroup / "cpu.max").write_text("max 100000\n")
    assert session.available_cpus() == 8


def test_cgroup_v2_quota_caps_threads(fake_cgroup):
    (fake_cgroup / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert session.available_cpus() == 1


def test_cgroup_v1_quota(fake_cgroup):
    (fake_cgroup / "cpu").mkdir()
    (fake_cgroup / "cpu/cpu.cfs_quota_us").write_text("400000\n")
    (fake_cgroup / "cpu/cpu.cfs_period_us").write_text("100000\n")
    assert session.available_cpus() == 4


def test_at_least_one_cpu(fake_cgroup):
    (fake_cgroup / "cpu.max").write_text("20000 100000\n")  # a fifth of a CPU
    assert session.available_cpus() == 1


def test_session_uses_requested_threads(models_dir):
    model = models_dir / "sentence-transformers/all-MiniLM-L6-v2/model.onnx"
    s = session.create_session(model, threads=1)
    assert s.get_session_options().intra_op_num_threads == 1
    assert s.get_providers() == ["CPUExecutionProvider"]
