"""Issue 13, the ingest / kb-file part: what a hostile or careless user did to the kb and its files, as tests.

Items: 1 duplicate ids, 2 symlinks and unreadable paths, 3 every type in kb/ and per-file limits, 4 atomic
writes under SIGKILL, 10 `kb check` and ingest agree. (Item 8, the LLM citation check, is in test_llm.py.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpo_assistant.settings import REPO_ROOT
from conftest import make_settings

ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False",
       "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1",
       "ANONYMIZED_TELEMETRY": "False", "PATH": "/usr/bin:/bin"}

# A slow disk, so that a kill can land inside a write: every write to a file under SLOW_DIR is done in two
# halves with a pause between them. Both the old (truncate, then write) and the atomic path go through
# io.open (os.fdopen calls it too), so the shim slows them alike; only what a reader can see differs.
SLOW_DISK = r"""
import io, os, sys, time
slow_dir = os.environ["SLOW_DIR"]
_open = io.open

class _Slow:
    def __init__(self, fh): self._fh = fh
    def write(self, data):
        half = len(data) // 2
        n = self._fh.write(data[:half]); self._fh.flush(); time.sleep(float(os.environ["SLOW_S"]))
        return n + self._fh.write(data[half:])
    def __enter__(self): return self
    def __exit__(self, *exc): return self._fh.__exit__(*exc)
    def __getattr__(self, name): return getattr(self._fh, name)

def _slow_open(file, mode="r", *args, **kwargs):
    fh = _open(file, mode, *args, **kwargs)
    name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.path.abspath(file)
    return _Slow(fh) if any(c in mode for c in "wax+") and name.startswith(slow_dir) else fh

io.open = _slow_open
import builtins; builtins.open = _slow_open
from bpo_assistant.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str, env: dict, slow_dir: Path, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_DISK, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**ENV, **env, "SLOW_DIR": str(slow_dir), "SLOW_S": str(pause)})


def _kill_at_random_points(args: tuple[str, ...], env: dict, slow_dir: Path, pause: float, window: float,
                           runs: int, check) -> int:
    """One full run, then `runs` runs each SIGKILLed at a random moment of its write phase (from the first
    change under slow_dir, up to `window` s later; waiting for the change keeps the kills inside the writes
    however loaded the machine is); `check()` after each. Returns how many were killed before finishing."""
    assert _cli(*args, env=env, slow_dir=slow_dir, pause=pause).wait(timeout=300) in (0, 1)
    check()
    rng, killed = random.Random(13), 0
    for _ in range(runs):
        before = _snapshot(slow_dir)
        proc = _cli(*args, env=env, slow_dir=slow_dir, pause=pause)
        while proc.poll() is None and _snapshot(slow_dir) == before:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, window))
        killed += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        check()
    return killed


def _snapshot(folder: Path) -> dict[str, int]:
    out = {}
    for entry in os.scandir(folder):
        try:
            out[entry.name] = entry.stat().st_mtime_ns
        except FileNotFoundError:  # a temp file renamed away between listing and stat
            pass
    return out


# ---------------------------------------------------------------- item 4: atomic writes under SIGKILL


@pytest.mark.slow
def test_kb_check_fix_hashes_killed_at_random_points_never_truncates_a_curated_file(tmp_path):
    kb = tmp_path / "kb"
    shutil.copytree(REPO_ROOT / "kb", kb)
    curated = sorted((kb / "curated").glob("*.yaml"))
    original = {p.name: p.read_bytes() for p in curated}  # the real kb is stamped: --fix-hashes rewrites the same bytes

    def every_curated_file_intact():
        now = {p.name: p.read_bytes() for p in sorted((kb / "curated").glob("*.yaml"))}
        broken = [name for name, data in original.items() if now.get(name) != data]
        assert not broken, f"curated files truncated or changed by a killed --fix-hashes: {broken}"

    env = {"BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(tmp_path / "data")}
    killed = _kill_at_random_points(("kb", "check", "--fix-hashes"), env, kb / "curated", 0.02, 0.9, 30,
                                    every_curated_file_intact)
    assert killed >= 20  # the kills really landed mid-write


@pytest.mark.slow
def test_eval_update_baseline_killed_at_random_points_never_truncates_the_baseline(tmp_path):
    from bpo_assistant.ingest.pipeline import run_ingest

    kb = tmp_path / "kb"
    shutil.copytree(REPO_ROOT / "kb", kb)
    env = {"BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(tmp_path / "data"), "BPO_EMBEDDER": "fake:32"}
    run_ingest(make_settings(tmp_path / "data", kb, embedder="fake:32"), progress=False)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(REPO_ROOT.joinpath("evals/suites/dev.jsonl").read_text(encoding="utf-8")
                             .splitlines(keepends=True)[:5]), encoding="utf-8")
    out = tmp_path / "baselines"
    out.mkdir()
    baseline = out / "baseline.json"
    baseline.write_text(json.dumps({"pass_rate": 0.5, "passing_ids": ["x"] * 200}) + "\n", encoding="utf-8")

    def baseline_whole():
        data = json.loads(baseline.read_text(encoding="utf-8"))  # raises on a truncated or empty file
        assert "pass_rate" in data

    killed = _kill_at_random_points(("eval", "--suite", str(suite), "--baseline", str(baseline),
                                     "--update-baseline"), env, out, 1.5, 1.4, 8, baseline_whole)
    assert killed >= 6


# ---------------------------------------------------------------- shared fixture kb

DOCS = {
    ("ja", "itaku"): {"definition": "委託とは業務を外部に任せることです。", "scope": "委託の範囲は契約で決めます。"},
    ("ja", "keiyaku"): {"ukeoi": "請負契約は成果物の完成を目的とします。"},
    ("en", "itaku"): {"definition": "Outsourcing hands work to an outside vendor."},
}


@pytest.fixture
def settings(tmp_path):
    from conftest import write_doc

    s = make_settings(tmp_path / "data", tmp_path / "kb", embedder="fake:32")
    for (lang, doc_id), sections in DOCS.items():
        write_doc(s.kb_dir, lang, doc_id, sections)
    return s


def _ingest(settings, capsys) -> tuple[int, str]:
    from bpo_assistant.ingest.pipeline import cli_ingest

    code = cli_ingest(settings, None, quiet=True)
    out = capsys.readouterr()
    return code, out.out + out.err


def _indexed_text(settings) -> dict[tuple[str, str], str]:
    from bpo_assistant import records
    from bpo_assistant.index import current_generation, generation_dir

    out: dict[tuple[str, str], str] = {}
    for r in records.read(generation_dir(settings, current_generation(settings)))[0]:
        out[(r.lang, r.doc_id)] = out.get((r.lang, r.doc_id), "") + r.text
    return out


def _all_text(settings) -> str:
    return "\n".join(_indexed_text(settings).values())


def _impostor(path: Path, doc_id: str, lang: str, text: str) -> Path:
    """kb/<folder>/<name>.md whose front matter says id `doc_id` and lang `lang`."""
    from conftest import write_doc

    written = write_doc(path.parents[1], path.parent.name, path.stem, {"definition": text})
    front = written.read_text(encoding="utf-8").replace(f"id: {path.stem}\n", f"id: {doc_id}\n", 1)
    written.write_text(front.replace(f"lang: {path.parent.name}\n", f"lang: {lang}\n", 1), encoding="utf-8")
    return written


# ---------------------------------------------------------------- item 1: duplicate ids


def test_duplicate_id_first_file_by_path_wins_whatever_was_indexed_first(settings, capsys):
    kb = settings.kb_dir
    impostor = _impostor(kb / "ja" / "zz-copy.md", "itaku", "ja", "偽物の文書が委託の定義を書き換えました。")
    code, out = _ingest(settings, capsys)
    assert code == 1
    assert "委託とは業務を外部に任せることです。" in _indexed_text(settings)[("ja", "itaku")]
    assert str(impostor) in out and "itaku.md" in out and "duplicate id 'itaku'" in out

    # Indexed first, a file that sorts before the original still wins on the next run, and the one that
    # loses names the winner: the outcome depends on paths only, never on history.
    early = _impostor(kb / "ja" / "aa-early.md", "keiyaku", "ja", "早い者勝ちの偽物が請負契約を説明します。")
    code, out = _ingest(settings, capsys)
    assert code == 1
    assert "早い者勝ち" in _indexed_text(settings)[("ja", "keiyaku")]
    assert f"{kb / 'ja' / 'keiyaku.md'}" in out and str(early) in out

    impostor.unlink()
    early.unlink()
    code, out = _ingest(settings, capsys)
    assert code == 0, out  # the skipped original is indexed again once the duplicate is gone
    assert "請負契約は成果物" in _indexed_text(settings)[("ja", "keiyaku")]


def test_a_kb_en_file_claiming_lang_ja_cannot_displace_the_japanese_document(settings, capsys):
    from bpo_assistant.kbcheck import check_kb

    liar = _impostor(settings.kb_dir / "en" / "aaa.md", "itaku", "ja", "偽物です。委託は不要です。")
    code, out = _ingest(settings, capsys)
    assert code == 1
    assert "委託とは業務を外部に任せることです。" in _indexed_text(settings)[("ja", "itaku")]
    assert f"{liar}: line 4: front matter says lang: ja, but the file is in kb/en/" in out
    assert any(p.startswith(f"{liar}:4: front matter says lang: ja") for p in check_kb(settings.kb_dir))


def _curated(kb: Path, name: str, cid: str, answer: str) -> Path:
    import yaml

    path = kb / "curated" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "id": cid, "lang": "ja", "topic": "overview", "questions": ["委託とは？", "委託って何？", "委託の意味は？"],
        "answer": answer, "sources": [{"doc": "itaku", "section": "definition"}], "owner": "t",
        "reviewed": "2026-11-26"}, allow_unicode=True), encoding="utf-8")
    return path


def test_two_curated_answers_with_one_id_first_by_path_wins(settings, capsys):
    from bpo_assistant.curated import load_curated
    from bpo_assistant.kbcheck import check_kb
    from bpo_assistant.kbfiles import load_kb_docs

    first = _curated(settings.kb_dir, "itaku-ja", "itaku-ja", "委託とは業務を外部に任せることです。[1]")
    second = _curated(settings.kb_dir, "zz-copy", "itaku-ja", "委託は何でも丸投げすることです。[1]")
    answers, errors = load_curated(settings.kb_dir, load_kb_docs(settings.kb_dir)[0])
    assert [a.path for a in answers] == [str(first)]
    assert errors == [f"{second}:1: duplicate curated id 'itaku-ja': {first} has it too and comes first by path, "
                      "so this file is skipped; give it its own id"]
    assert any(p.startswith(f"{second}:1: duplicate curated id") for p in check_kb(settings.kb_dir))
    code, out = _ingest(settings, capsys)
    assert code == 1 and str(second) in out and str(first) in out


# ---------------------------------------------------------------- item 2: symlinks, unreadable paths


def test_symlinks_are_never_followed_out_of_the_kb_and_loops_and_pipes_are_named(settings, tmp_path, capsys):
    kb = settings.kb_dir
    secret = tmp_path / "secret.md"
    secret.write_text("社外秘の文書です。\n", encoding="utf-8")
    (kb / "ja" / "leak.md").symlink_to(secret)
    (kb / "ja" / "loop.md").symlink_to(kb / "ja" / "loop.md")
    (kb / "ja" / "up").symlink_to(kb, target_is_directory=True)  # a folder loop
    (kb / "ja" / "gone.md").symlink_to(kb / "ja" / "nothing-here.md")
    os.mkfifo(kb / "ja" / "pipe.md")  # reading it would block forever
    code, out = _ingest(settings, capsys)
    assert code == 1
    assert "社外秘" not in _all_text(settings)
    assert f"{kb / 'ja' / 'leak.md'}: symlink to {secret}, outside kb/: not followed" in out
    assert f"{kb / 'ja' / 'loop.md'}: symlink loop; skipped" in out
    assert f"{kb / 'ja' / 'up'}: symlinked folder" in out
    assert f"{kb / 'ja' / 'gone.md'}: broken symlink" in out
    assert f"{kb / 'ja' / 'pipe.md'}: not a regular file" in out
    from bpo_assistant.kbcheck import check_kb

    problems = check_kb(kb)
    for name in ("leak.md", "loop.md", "up", "gone.md", "pipe.md"):
        assert any(p.startswith(f"{kb / 'ja' / name}:1: ") for p in problems), (name, problems)
    assert set(_indexed_text(settings)) == set(DOCS)  # everything else ingested


def _without_read_override():
    """Root reads any file whatever its mode: the CLI under test runs without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (dropped from the bounding set before exec), so a mode-000 file is unreadable to it."""
    if os.geteuid() != 0:
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH; 24 = PR_CAPBSET_DROP
            if libc.prctl(24, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


def test_unreadable_file_and_folder_are_named_and_ask_answers_from_the_rest(tmp_path):
    from conftest import write_doc

    kb, data = tmp_path / "kb", tmp_path / "data"
    for (lang, doc_id), sections in DOCS.items():
        write_doc(kb, lang, doc_id, sections)
    write_doc(kb, "ja", "secret", {"s": "読めない文書です。"}).chmod(0o000)
    write_doc(kb / "private", "ja", "x", {"s": "読めないフォルダの文書です。"})
    (kb / "private").chmod(0o000)
    # Fake vectors carry no meaning, so the gate's cosine floor (set for e5) is lifted: the question is about the
    # documents that could be read, and the answer must come from them.
    env = {**ENV, "BPO_KB_DIR": str(kb), "BPO_DATA_DIR": str(data), "BPO_EMBEDDER": "fake:32",
           "BPO_MIN_DENSE_SCORE": "-1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "bpo_assistant.cli", *a], cwd=REPO_ROOT, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=300, preexec_fn=_without_read_override())
    try:
        ingest = run("ingest", "--quiet")
        assert ingest.returncode == 1, ingest.stdout + ingest.stderr
        assert f"{kb / 'ja' / 'secret.md'}: cannot read the file: Permission denied" in ingest.stdout
        assert f"{kb / 'private'}: cannot read folder: Permission denied; skipped" in ingest.stdout
        assert "Ingested: 3 documents" in ingest.stdout
        ask = run("ask", "委託とは何ですか？")
        assert ask.returncode == 0 and "Traceback" not in ask.stderr, ask.stderr[-2000:]
        assert "委託とは業務を外部に任せることです。" in ask.stdout and "[1]" in ask.stdout
    finally:
        (kb / "private").chmod(0o755)


# ---------------------------------------------------------------- item 3: every type in kb/, limits per file


def _docx(path: Path, paragraphs: list[tuple[str, str]]) -> Path:
    import docx

    document = docx.Document()
    for style, text in paragraphs:
        document.add_paragraph(text, style=style)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(path)
    return path


def test_pdf_docx_html_txt_anywhere_in_kb_are_ingested_and_other_types_named(settings, capsys):
    from bpo_assistant.kbcheck import check_kb
    from test_loaders import make_pdf

    kb = settings.kb_dir
    (kb / "manuals").mkdir()
    (kb / "manuals" / "guide.pdf").write_bytes(make_pdf([["請負契約の手引き", "請負契約では成果物の検収を行います。"]]))
    _docx(kb / "manuals" / "memo.docx", [("Heading 1", "委託先の評価"), ("Normal", "委託先は毎月評価します。")])
    (kb / "manuals" / "page.html").write_text("<h1>Vendor notes</h1><p>The vendor reports monthly.</p>",
                                              encoding="utf-8")
    (kb / "ja" / "note.txt").write_text("委託メモ\n\n委託先とは毎週会議をします。\n", encoding="utf-8")
    (kb / "manuals" / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (kb / "glossary.yaml").write_text("[]\n", encoding="utf-8")  # kb data, not documents: never named
    (kb / "questions" / "ja").mkdir(parents=True)
    (kb / "questions" / "ja" / "itaku.yaml").write_text("doc: itaku\nlang: ja\nsections: {}\n", encoding="utf-8")
    code, out = _ingest(settings, capsys)
    text = _all_text(settings)
    for fact in ("成果物の検収", "毎月評価します", "reports monthly", "毎週会議"):
        assert fact in text, fact
    assert code == 1
    skipped = out.split("Skipped", 1)[1]
    assert f"{kb / 'manuals' / 'sheet.xlsx'}: unsupported file type '.xlsx'" in skipped
    assert "yaml" not in skipped
    # `kb check` names what ingest skips, for the same reason, and nothing else about these files
    problems = [p for p in check_kb(kb) if "manuals" in p or "note.txt" in p]
    assert problems == [f"{kb / 'manuals' / 'sheet.xlsx'}:1: unsupported file type '.xlsx'; supported: "
                        ".md .markdown .txt .html .htm .pdf .docx"]


def _zip_bomb(path: Path, unzipped: int) -> Path:
    """A valid-looking DOCX whose one extra part is `unzipped` zero bytes (≈1000:1 compressed)."""
    import zipfile

    good = _docx(path.with_name("good.docx"), [("Normal", "本文です。")])
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        with dst.open("word/media/zeros.bin", "w") as fh:
            for _ in range(unzipped // 1_000_000):
                fh.write(bytes(1_000_000))
    good.unlink()
    return path


def test_docx_zip_bomb_is_rejected_before_it_is_unpacked(tmp_path):
    bomb = _zip_bomb(tmp_path / "kb" / "bomb.docx", 300_000_000)
    assert bomb.stat().st_size < 1_000_000
    probe = ("import resource, sys; from bpo_assistant.ingest.loaders import LoadError, load_file; "
             "from bpo_assistant.settings import Settings\n"
             "import docx  # the parser's own memory is not what is measured\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "try:\n    load_file(sys.argv[1], Settings(kb_dir=sys.argv[2]))\nexcept LoadError as e:\n    print(e.reason)\n"
             "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", probe, str(bomb), str(tmp_path / "kb")], cwd=REPO_ROOT,
                         env=ENV, capture_output=True, text=True, timeout=120)
    reason, growth_mb = out.stdout.strip().splitlines()
    assert reason.startswith("DOCX unzips to 30") and "over the limit of 20,000,000 (BPO_MAX_UNZIPPED_BYTES)" in reason
    assert int(growth_mb) < 20, f"peak RSS grew {growth_mb} MB while rejecting a {bomb.stat().st_size:,}-byte zip bomb"


def test_ten_thousand_headings_are_rejected_at_once_by_ingest_and_kb_check(settings, capsys):
    from bpo_assistant.kbcheck import check_kb
    from conftest import write_doc

    write_doc(settings.kb_dir, "ja", "many", {f"h{i}": f"見出し{i}の本文です。" for i in range(10_000)})
    t = time.monotonic()
    code, out = _ingest(settings, capsys)
    assert time.monotonic() - t < 60
    reason = "10,000 headings (sections), over the limit of 300 (BPO_MAX_SECTIONS); split the document"
    assert code == 1 and reason in out
    assert any("many.md" in p and reason in p for p in check_kb(settings.kb_dir))


def test_pdf_page_and_document_character_limits_name_the_limit(settings, tmp_path):
    from bpo_assistant.ingest.loaders import LoadError, load_file
    from test_loaders import make_pdf

    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(make_pdf([["第一章", "本文です。"]] * 3))
    with pytest.raises(LoadError, match=r"PDF has 3 pages, over the limit of 2 \(BPO_MAX_PDF_PAGES\)"):
        load_file(pdf, settings.model_copy(update={"max_pdf_pages": 2}))
    txt = tmp_path / "long.txt"
    txt.write_text("委託の本文です。\n" * 200, encoding="utf-8")
    with pytest.raises(LoadError, match=r"characters of text, over the limit of 500 \(BPO_MAX_DOC_CHARS\)"):
        load_file(txt, settings.model_copy(update={"max_doc_chars": 500}))


# ---------------------------------------------------------------- item 10: kb check and ingest agree


def test_kb_check_and_ingest_reject_the_same_files_for_the_same_reason(settings, capsys):
    from bpo_assistant.kbcheck import check_kb

    kb = settings.kb_dir
    nul = kb / "ja" / "nul.md"
    nul.write_bytes((kb / "ja" / "keiyaku.md").read_bytes().replace(b"keiyaku", b"nul") + b"\x00")
    big = kb / "ja" / "big.md"
    big.write_bytes((kb / "ja" / "keiyaku.md").read_bytes().replace(b"keiyaku", b"big") + b"x" * 30_000_000)
    pipe = kb / "ja" / "pipe.md"
    os.mkfifo(pipe)  # `kb check` reading it would hang
    secret = kb.parent / "secret.md"
    secret.write_bytes((kb / "ja" / "keiyaku.md").read_bytes().replace(b"keiyaku", b"leak"))
    leak = kb / "ja" / "leak.md"
    leak.symlink_to(secret)
    code, out = _ingest(settings, capsys)
    problems = check_kb(kb)
    for path, reason in ((nul, "binary content (NUL bytes): not a UTF-8 text file"),
                         (big, "file is 30,000,"),
                         (pipe, "not a regular file (a pipe, socket or device)"),
                         (leak, f"symlink to {secret}, outside kb/: not followed")):
        assert f"{path}: {reason}" in out
        assert any(p.startswith(f"{path}:1: {reason}") for p in problems), problems
    assert "over the limit of 5,000,000 (BPO_MAX_FILE_BYTES)" in out
    assert code == 1


def test_atomic_write_keeps_the_owners_permissions_and_leaves_no_temp_file(tmp_path):
    from bpo_assistant import atomic

    owned = tmp_path / "curated" / "what-is-bpo-ja.yaml"
    owned.parent.mkdir()
    owned.write_text("id: old\n", encoding="utf-8")
    owned.chmod(0o640)
    atomic.write_text(owned, "id: 新しい\n")
    assert owned.read_text(encoding="utf-8") == "id: 新しい\n"
    assert owned.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in owned.parent.iterdir()) == ["what-is-bpo-ja.yaml"]
    with pytest.raises(TypeError):
        atomic.write_bytes(owned, "not bytes")  # fails inside the write: the old file stays, the temp goes
    assert owned.read_text(encoding="utf-8") == "id: 新しい\n"
    assert sorted(p.name for p in owned.parent.iterdir()) == ["what-is-bpo-ja.yaml"]
