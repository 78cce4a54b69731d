"""deploy/ holds what an operator copies; each file is checked by the tool that reads it.

nginx -t on the server block, systemd-analyze verify on the units (where this
machine has systemd's tools: the paths they name are an operator's, so only the
unit's own syntax and settings are judged), logrotate --debug on the rotation.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import require_service

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["booking.service", "booking-worker.service"]


def test_the_nginx_server_block_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        require_service("nginx", FileNotFoundError(nginx))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n"
        f" include {DEPLOY / 'nginx.conf'};\n}}\n"
    )
    done = subprocess.run([nginx, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "location = /metrics" in (DEPLOY / "nginx.conf").read_text()


@pytest.mark.parametrize("unit", UNITS)
def test_the_systemd_units_verify(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    done = subprocess.run(
        [analyze, "verify", str(DEPLOY / unit)], capture_output=True, text=True, timeout=60
    )
    # Missing binaries and users are the operator's paths, not the unit's mistakes.
    problems = [
        line
        for line in (done.stderr + done.stdout).splitlines()
        if line.strip()
        and "is not executable" not in line
        and "No such file or directory" not in line
        and "Failed to resolve" not in line
        and "user" not in line.lower()
    ]
    assert not problems, problems
    text = (DEPLOY / unit).read_text()
    for hardening in (
        "User=booking",
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
    ):
        assert hardening in text, hardening


def test_logrotate_reads_the_rotation(tmp_path):
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(logrotate).exists():
        pytest.skip("logrotate is not installed here")
    # The booking user is the operator's to create: judge the rest as root's.
    conf = tmp_path / "booking"
    conf.write_text((DEPLOY / "logrotate.conf").read_text().replace("booking booking", "root root"))
    done = subprocess.run(
        [logrotate, "--debug", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
