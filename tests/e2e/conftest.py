"""pytest fixtures for the pacsbox end-to-end suite.

* `pacsbox_bin`  - path of the binary under test ($PACSBOX_BIN, default
                   target/release/pacsbox); the session fails clearly if absent.
* `server`       - factory: `server(ae=..., max_associations=..., ...)` starts
                   `pacsbox serve` on free ports with a fresh data dir, waits
                   until /status.json answers and the DICOM port accepts, and
                   stops it at teardown.  Its stderr is attached to the report
                   of a failing test.
* `module_server` - the same factory with module scope (one archive shared by the read-only
                   tests of a module, e.g. test_qr_find.py / test_qr_retrieve.py).
* a per-test wall-clock limit (SIGALRM), default 240 s, override with
  `@pytest.mark.timeout(seconds)`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

DEFAULT_TIMEOUT = 240


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): wall-clock limit for one test (SIGALRM)")


@pytest.fixture(scope="session")
def pacsbox_bin() -> Path:
    p = Path(os.environ.get("PACSBOX_BIN", "target/release/pacsbox"))
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (helpers.REPO / p)
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(
            f"pacsbox binary not found at {p} (set PACSBOX_BIN or run `cargo build --release -p pacsbox`)",
            pytrace=False,
        )
    return p


def _flag_args(opts: dict) -> list[str]:
    args: list[str] = []
    for k, v in opts.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        else:
            args += [flag, str(v)]
    return args


@pytest.fixture
def server(request, pacsbox_bin, tmp_path):
    """Factory: server(data=None, ae="PACSBOX", start=True, env=None, peers=None, **flags) -> helpers.PacsboxServer.

    peers: `--peer` values (default: helpers.TEST_PEERS with all rights).

    flags become command-line options: max_associations=2 -> --max-associations 2.
    Unless given, --reserve-mb 1 is passed so that a nearly-full build machine
    does not make every store fail with A700.
    """
    servers: list[helpers.PacsboxServer] = []
    request.node._pacsbox_servers = servers

    def make(data: Path | None = None, *, ae: str = "PACSBOX", start: bool = True, env: dict | None = None,
             peers=None, **flags) -> helpers.PacsboxServer:
        n = len(servers) + 1
        data = Path(data) if data is not None else tmp_path / f"data{n}"
        logdir = tmp_path / f"logs{n}"
        logdir.mkdir(parents=True, exist_ok=True)
        flags.setdefault("reserve_mb", 1)
        srv = helpers.PacsboxServer(pacsbox_bin, data, logdir, ae=ae, extra=_flag_args(flags), env=env,
                                     peers=peers)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    problems = []
    for srv in servers:
        if srv.proc is not None and srv.proc.poll() is not None and not srv.expected_down:
            problems.append(
                f"pacsbox serve (data {srv.data}) exited on its own with code {srv.proc.returncode} during the test"
            )
        try:
            srv.stop()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in [*getattr(item, "_pacsbox_servers", []), *getattr(item.module, "_pacsbox_module_servers", [])]:
            text = srv.stderr_text() if srv.logs else ""
            if text:
                rep.sections.append((f"pacsbox stderr (data {srv.data})", text))


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout")
    seconds = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(_sig, _frame):
        raise _TestTimeout(f"test exceeded its {seconds}s wall-clock limit")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def module_server(request, pacsbox_bin, tmp_path_factory):
    """Like `server`, but the servers live for the whole test module (one archive shared by
    read-only tests, e.g. the Q/R suites).  Their stderr is attached to any failing test of
    the module; a server that died on its own fails the module's last test at teardown.
    """
    servers: list[helpers.PacsboxServer] = []
    request.module._pacsbox_module_servers = servers
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])

    def make(data: Path | None = None, *, ae: str = "PACSBOX", start: bool = True, env: dict | None = None,
             peers=None, **flags) -> helpers.PacsboxServer:
        n = len(servers) + 1
        data = Path(data) if data is not None else base / f"data{n}"
        logdir = base / f"logs{n}"
        logdir.mkdir(parents=True, exist_ok=True)
        flags.setdefault("reserve_mb", 1)
        srv = helpers.PacsboxServer(pacsbox_bin, data, logdir, ae=ae, extra=_flag_args(flags), env=env,
                                     peers=peers)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    make.base = base
    yield make

    problems = []
    for srv in servers:
        if srv.proc is not None and srv.proc.poll() is not None and not srv.expected_down:
            problems.append(
                f"pacsbox serve (data {srv.data}) exited on its own with code {srv.proc.returncode} during the module"
            )
        try:
            srv.stop()
        except AssertionError as e:
            problems.append(str(e))
    request.module._pacsbox_module_servers = []
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def pytest_collection_modifyitems(session, config, items):
    """A `@pytest.mark.timeout` on a helper does nothing (`pytest_runtest_call` reads the
    limit from the test item): refuse to run rather than let the test go unguarded."""
    misplaced = []
    for mod in {item.module for item in items if getattr(item, "module", None) is not None}:
        for name, obj in vars(mod).items():
            marks = getattr(obj, "pytestmark", [])
            if callable(obj) and not name.startswith("test") and any(m.name == "timeout" for m in marks):
                misplaced.append(f"{mod.__name__}.{name}")
    if misplaced:
        raise pytest.UsageError(f"@pytest.mark.timeout on something that is not a test: {sorted(misplaced)}")
