"""Issue 5: the shipped systemd units and cron line are valid and hardened."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "scripts" / "systemd"


def test_units_pass_systemd_analyze_verify(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is installed by .ci/run (package systemd)"
    for unit in UNITS.iterdir():
        text = unit.read_text()
        # verify checks that ExecStart exists: point it at this checkout's console script
        text = text.replace("/opt/ghcr-inventory/.venv/bin/ghcr-inventory",
                            str(Path(sys.executable).parent / "ghcr-inventory"))
        (tmp_path / unit.name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # verify only warns about unknown keys and bad values: treat any output as a failure
    assert proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr + proc.stdout


def test_service_is_a_hardened_oneshot_with_a_credential():
    service = (UNITS / "ghcr-inventory.service").read_text()
    for directive in ("Type=oneshot", "LoadCredential=github-token:", "DynamicUser=yes",
                      "ProtectSystem=strict", "StateDirectory=ghcr-inventory", "SuccessExitStatus=75",
                      "NoNewPrivileges=yes", "KillSignal=SIGTERM"):
        assert re.search(rf"^{re.escape(directive)}", service, re.M), directive
    assert "GITHUB_TOKEN" not in service  # the token never travels in the environment or argv
    timer = (UNITS / "ghcr-inventory.timer").read_text()
    for directive in ("RandomizedDelaySec=", "Persistent=true", "OnCalendar="):
        assert re.search(rf"^{re.escape(directive)}", timer, re.M), directive


def test_cron_line_uses_flock():
    lines = [l for l in (ROOT / "scripts" / "ghcr-inventory.cron").read_text().splitlines()
             if l and not l.startswith("#")]
    env = [l for l in lines if re.fullmatch(r"[A-Z_]+=\S*", l)]
    lines = [l for l in lines if l not in env]
    assert env == ["MALLOC_ARENA_MAX=2"]     # as the systemd units set it
    assert all("Environment=MALLOC_ARENA_MAX=2" in u.read_text() for u in UNITS.glob("*.service"))
    assert len(lines) == 1
    fields = lines[0].split()
    assert len(fields[:5]) == 5 and fields[6:8] == ["flock", "-n"]
    assert " sync " in lines[0] and "--log-format json" in lines[0]


def test_serve_unit_is_a_hardened_notify_service_with_credentials():
    service = (UNITS / "ghcr-inventory-serve.service").read_text()
    for directive in ("Type=notify", "LoadCredential=github-token:", "LoadCredential=webhook-secret:",
                      "DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=ghcr-inventory",
                      "NoNewPrivileges=yes", "KillSignal=SIGTERM", "Restart=on-failure", "CapabilityBoundingSet="):
        assert re.search(rf"^{re.escape(directive)}", service, re.M), directive
    assert re.search(r"^ExecStart=\S+ghcr-inventory .* serve$", service, re.M)
    assert "SECRET" not in service.split("[Service]")[1]   # the secret never travels in the environment or argv


def test_template_unit_runs_one_crawler_per_owner_with_its_credentials():
    """Issue 14: ghcr-inventory@OWNER.service, one instance per owner/token
    against the shared PostgreSQL inventory (verified above with the rest)."""
    service = (UNITS / "ghcr-inventory@.service").read_text()
    for directive in ("Type=oneshot", "ExecStart=/opt/ghcr-inventory/.venv/bin/ghcr-inventory --config "
                      "/etc/ghcr-inventory/%i.toml", "LoadCredential=github-token:/etc/ghcr-inventory/%i.",
                      "LoadCredential=pg-password:/etc/ghcr-inventory/%i.", "SuccessExitStatus=75",
                      "DynamicUser=yes", "NoNewPrivileges=yes", "StateDirectory=ghcr-inventory/%i"):
        assert re.search(rf"^{re.escape(directive)}", service, re.M), directive
    assert "PGPASSWORD" not in service.split("[Service]")[1] and "GITHUB_TOKEN" not in service
    timer = (UNITS / "ghcr-inventory@.timer").read_text()
    assert re.search(r"^RandomizedDelaySec=", timer, re.M) and re.search(r"^OnCalendar=", timer, re.M)
