"""`make doctor` (utils/course/doctor.py): every check reported, oneDNN's ISA parsed, each problem with its fix."""

import socket
import sys
from collections import namedtuple

import torch
import torchvision

from utils import data
from utils.course import doctor

NAMES = ("python", "packages", "cpu", "oneDNN", "gpu", "jupyter", "data", "disk", "profile", "training step")


def test_report_on_this_machine_has_every_check_and_exits_0(capsys):
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert any(line.split()[0] in ("ok", "warn") and f" {name} " in line for line in out.splitlines()), name
    assert "ready: the course runs here" in out


def test_parse_isa_from_onednn_verbose_lines():
    avx512 = ("onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71)\n"
              "onednn_verbose,v1,info,cpu,runtime:OpenMP,nthr:2\n"
              "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support\n"
              "onednn_verbose,v1,info,gpu,runtime:none\n")
    assert doctor.parse_isa(avx512) == "Intel AVX-512 with Intel DL Boost and bfloat16 support"
    assert doctor.parse_isa("onednn_verbose,v1,info,cpu,isa:Intel AVX2\r\n") == "Intel AVX2"
    assert doctor.parse_isa("dnnl_verbose,info,cpu,isa:Intel AVX2 with Intel DL Boost\n") == \
        "Intel AVX2 with Intel DL Boost"
    assert doctor.parse_isa("some other output\nisa:Intel AVX2\n") is None


def test_avx2_isa_is_ok_and_names_the_workaround(monkeypatch):
    monkeypatch.setattr(doctor.runtime, "onednn_nhwc_bug", lambda: True)
    probe = (sys.executable, "-c", "print('onednn_verbose,v1,info,cpu,isa:Intel AVX2')")
    check = doctor.check_onednn(probe)
    if torch.backends.mkldnn.is_available():
        assert check.status == "ok" and "isa Intel AVX2" in check.what and "works around" in check.what


def test_lock_mismatch_is_a_warn_with_its_fix(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"numpy==1.26.4\ntorch==0.0.1 ; python_version >= '3'\n"
                    f"torch==9.9.9 ; sys_platform == 'no-such-platform'\ntorchvision=={torchvision.__version__}\n")
    check = doctor.check_versions(lock)
    assert check.status == "warn" and "pins 0.0.1" in check.what and "9.9.9" not in check.what
    assert "make clean && make test" in check.fix

    base = torch.__version__.split("+")[0]  # a pin without the build tag accepts 2.14.1+cu130, as pip does
    lock.write_text(f"torch=={base}  \\\n    --hash=sha256:00\ntorchvision=={torchvision.__version__}\n")
    assert doctor.check_versions(lock).status == "ok"

    missing = doctor.check_versions(tmp_path / "absent.lock")
    assert missing.status == "warn" and "no absent.lock" in missing.what and missing.fix


def test_training_step_killed_by_a_signal_is_a_fail_naming_it():
    crash = (sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    check = doctor.check_training_step(crash)
    assert check.status == "FAIL" and "killed by SIGSEGV" in check.what and "issue" in check.fix

    hang = doctor.check_training_step((sys.executable, "-c", "import time; time.sleep(30)"), timeout=1)
    assert hang.status == "FAIL" and "hung" in hang.what

    error = doctor.check_training_step((sys.executable, "-c", "raise SystemExit('loss nan: not finite')"))
    assert error.status == "FAIL" and "status 1: loss nan: not finite" in error.what


def test_data_not_found_is_a_fail_with_the_fix_text(monkeypatch):
    def missing():
        raise data.DataNotFoundError("No usable copy of Fashion-MNIST was found. Any one of these fixes it:\n"
                                     "  2. install Debian's package: sudo apt-get install dataset-fashion-mnist;")
    monkeypatch.setattr(data, "source", missing)
    check = doctor.check_data()
    assert check.status == "FAIL" and "sudo apt-get install dataset-fashion-mnist" in check.fix


def test_the_data_check_never_connects():
    with doctor._offline():
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
            connected = True
        except OSError as error:
            connected = False
            assert "never downloads" in str(error)
    assert not connected


def test_disk_thresholds(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    for free, status in ((100e6, "FAIL"), (1e9, "warn"), (50e9, "ok")):
        monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path, free=free: usage(0, 0, free))
        assert doctor.check_disk(tmp_path / "not" / "yet").status == status


def test_a_fail_makes_the_exit_status_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "checks", lambda: [doctor.Check("ok", "python", "3.11"),
                                                   doctor.Check("FAIL", "data", "not found", "line one\nline two")])
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  data" in out and "fix: line one\n           line two" in out and "1 FAIL" in out
