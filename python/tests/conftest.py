"""Shared fixtures: stores in temporary directories, the fake Zoho server, the CLI binary."""

import base64
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import tokenvault  # noqa: E402
from fake_zoho import FakeZoho  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("TOKENVAULT_REQUIRE_SERVICES") == "1"


def unavailable(reason):
    """A missing service or tool: a failure in CI (TOKENVAULT_REQUIRE_SERVICES=1), else a skip."""
    if REQUIRED:
        pytest.fail(reason + " (required: TOKENVAULT_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def key():
    return os.urandom(32)


@pytest.fixture
def store_dir(tmp_path):
    path = tmp_path / "store"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def uri(store_dir):
    return "sqlite:" + str(store_dir / "tokens.db")


@pytest.fixture
def store(uri, key):
    return tokenvault.Store.create(uri, key=key)


@pytest.fixture
def fake():
    server = FakeZoho().start()
    yield server
    server.stop()


@pytest.fixture
def slow_fake():
    """A fake whose refresh takes 0.3 s: long enough for racing callers to overlap."""
    server = FakeZoho(refresh_delay=0.3).start()
    yield server
    server.stop()


@pytest.fixture
def cli():
    """The tokenvault CLI: $TOKENVAULT_CLI, else on PATH, else the workspace's debug build."""
    candidates = [os.environ.get("TOKENVAULT_CLI"), shutil.which("tokenvault"),
                  str(REPO / "target" / "debug" / "tokenvault")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    unavailable("the tokenvault CLI is not built (cargo build -p tokenvault-cli)")


def run_cli(cli, args, *, store_uri, key=None, passphrase=None, stdin=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TOKENVAULT_KEY", "TOKENVAULT_PASSPHRASE", "TOKENVAULT_STORE")}
    env["TOKENVAULT_STORE"] = store_uri
    if key is not None:
        env["TOKENVAULT_KEY"] = base64.b64encode(key).decode()
    if passphrase is not None:
        env["TOKENVAULT_PASSPHRASE"] = passphrase
    done = subprocess.run([cli] + args, input=stdin, capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def store_files_bytes(directory):
    """Every byte of every file under `directory` (the store, its journal, lock files)."""
    data = b""
    for path in pathlib.Path(directory).rglob("*"):
        if path.is_file():
            data += path.read_bytes()
    return data


def start_workers(argv_for, count, gate, timeout=60):
    """Starts `count` zoho_worker.py processes and opens the gate once all are waiting at it."""
    import time

    workers = [subprocess.Popen(argv_for(i), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(count)]
    deadline = time.monotonic() + timeout
    while len(list(gate.parent.glob(gate.name + ".ready.*"))) < count:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            for w in workers:
                w.kill()
            raise AssertionError("workers did not all reach the gate: %s"
                                 % [w.communicate()[1][-2000:] for w in workers])
        time.sleep(0.01)
    gate.touch()
    return workers
