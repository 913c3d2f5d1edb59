"""Closed by default: the shipped configuration listens on this machine only, and opening it to the network is an
explicit TRIAGE_LISTEN that scripts/dashboard passes on and announces."""

import os
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.streamlit_server import streamlit_server
from triage.access import listens_locally, served_locally

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_config_binds_to_loopback() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert listens_locally(config["server"]["address"])
    assert config["server"]["allowedHosts"] == ["localhost", "127.0.0.1"]  # the names this machine's browsers use
    assert served_locally(config["server"]["address"], config["server"]["allowedHosts"])


def _listening(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _serve(tmp_path: Path, *extra: str) -> set[str]:
    """`streamlit run` from the checkout (so .streamlit/config.toml applies), and where it listens."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp (Linux) to see where a server listens")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "TRIAGE_LISTEN"))}
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'listen.db'}"
    with streamlit_server(cwd=ROOT, env=env, log_path=tmp_path / "streamlit.log", args=extra,
                          check_log=False) as server:
        return _listening(server.port)


def test_a_real_server_started_from_the_checkout_listens_on_this_machine_only(tmp_path: Path) -> None:
    addresses = _serve(tmp_path)
    assert addresses == {"127.0.0.1"}
    # the check sees the difference: the same server told to open up listens on every interface
    opened = _serve(tmp_path, "--server.address", "0.0.0.0")
    assert opened and not all(listens_locally(a) for a in opened)


@pytest.fixture
def script_tree(tmp_path: Path) -> Path:
    """scripts/dashboard in a copy of the layout whose setup, python and streamlit are stand-ins that print what
    they were asked to do."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "dashboard", tmp_path / "scripts" / "dashboard")
    (tmp_path / "scripts" / "setup").write_text("exit 0\n")
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "streamlit").write_text('#!/bin/sh\necho "streamlit $*"\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    (tmp_path / ".streamlit").mkdir()
    return tmp_path


def _run_script(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TRIAGE_LISTEN", "TRIAGE_HOSTS")}
    return subprocess.run(["bash", str(tree / "scripts" / "dashboard")], env={**clean, **env}, capture_output=True,
                          text=True, timeout=30, check=True)


def test_scripts_dashboard_says_it_listens_locally_and_passes_no_address(script_tree: Path) -> None:
    out = _run_script(script_tree)
    assert out.stdout.strip() == "streamlit run dashboard/app.py"  # config.toml's 127.0.0.1 and host names apply
    assert "listening on 127.0.0.1 only" in out.stderr and "TRIAGE_LISTEN=0.0.0.0" in out.stderr
    assert "reach it as localhost, 127.0.0.1;" in out.stderr and "WARNING" not in out.stderr


def test_triage_listen_opens_it_explicitly_and_warns_without_sign_in(script_tree: Path) -> None:
    out = _run_script(script_tree, TRIAGE_LISTEN="0.0.0.0")
    assert out.stdout.strip() == "streamlit run dashboard/app.py --server.address 0.0.0.0"
    assert "listening on 0.0.0.0" in out.stderr and "WARNING" in out.stderr
    # the port is open, but browsers elsewhere use another name: no connection until TRIAGE_HOSTS names it
    assert "get no connection until TRIAGE_HOSTS" in out.stderr
    (script_tree / ".streamlit" / "secrets.toml").write_text('[auth]\nclient_id = "c"\n')
    out = _run_script(script_tree, TRIAGE_LISTEN="0.0.0.0")
    assert "sign-in is on" in out.stderr and "WARNING" not in out.stderr
    (script_tree / ".streamlit" / "secrets.toml").write_text('[triage.access]\nleads = ["a@b.co"]\n')
    assert "sign-in is on" in _run_script(script_tree, TRIAGE_LISTEN="0.0.0.0").stderr  # the app says what is missing


def test_triage_hosts_adds_the_names_browsers_use(script_tree: Path) -> None:
    out = _run_script(script_tree, TRIAGE_LISTEN="0.0.0.0", TRIAGE_HOSTS="triage.example.com, 10.0.0.5")
    hosts = "--server.allowedHosts localhost --server.allowedHosts 127.0.0.1 --server.allowedHosts triage.example.com" \
            " --server.allowedHosts 10.0.0.5"
    assert out.stdout.strip() == f"streamlit run dashboard/app.py {hosts} --server.address 0.0.0.0"
    assert "reach it as localhost, 127.0.0.1, triage.example.com, 10.0.0.5;" in out.stderr
    assert "no connection until" not in out.stderr and "WARNING" in out.stderr  # no sign-in
    behind_a_proxy = _run_script(script_tree, TRIAGE_HOSTS="triage.example.com")  # listening on 127.0.0.1
    assert behind_a_proxy.stdout.strip() == ("streamlit run dashboard/app.py --server.allowedHosts localhost "
                                             "--server.allowedHosts 127.0.0.1 --server.allowedHosts triage.example.com")
    assert "WARNING" in behind_a_proxy.stderr  # whoever reaches the proxy is the local lead

def _upgrade(port: int, host: str) -> int:
    """The HTTP status a WebSocket upgrade to the dashboard's stream gets when the browser says `Host: host`."""
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        status_line = s.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_a_page_on_another_host_name_gets_no_websocket(tmp_path: Path) -> None:
    """DNS rebinding: a page on rebind.example whose name now points at 127.0.0.1 reaches the local server, but
    its browser says `Host: rebind.example`, which the shipped server.allowedHosts refuses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "TRIAGE_LISTEN"))}
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'hosts.db'}"
    with streamlit_server(cwd=ROOT, env=env, log_path=tmp_path / "streamlit.log", check_log=False) as server:
        assert _upgrade(server.port, f"localhost:{server.port}") == 101
        assert _upgrade(server.port, f"127.0.0.1:{server.port}") == 101
        for foreign in (f"rebind.example:{server.port}", "rebind.example", f"localhost.rebind.example:{server.port}",
                        f"127.0.0.1.nip.io:{server.port}"):
            assert _upgrade(server.port, foreign) != 101, foreign


def test_a_name_given_to_allowed_hosts_gets_its_websocket(tmp_path: Path) -> None:
    """What scripts/dashboard passes for TRIAGE_HOSTS (a proxy's name) is how Streamlit spells the option."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "TRIAGE_LISTEN"))}
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'hosts.db'}"
    args = ("--server.allowedHosts", "localhost", "--server.allowedHosts", "127.0.0.1",
            "--server.allowedHosts", "triage.example.com")
    with streamlit_server(cwd=ROOT, env=env, log_path=tmp_path / "streamlit.log", args=args,
                          check_log=False) as server:
        for allowed in ("triage.example.com", "localhost:8501", "127.0.0.1"):
            assert _upgrade(server.port, allowed) == 101, allowed
        assert _upgrade(server.port, "rebind.example") != 101
