"""`bpo-assistant` (or `python -m bpo_assistant`) command line: parses arguments and hands each subcommand to the module that owns it.

This is the one place where the core, ingest/ and evals/ are wired together; every handler is imported
lazily so `bpo-assistant --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import __version__
from .extras import MissingExtra
from .logs import configure_logging
from .settings import Settings, SettingsError, load_settings, set_offline_env


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpo-assistant", description="BPO knowledge assistant (offline, Japanese-first)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ingest", help="index kb/ (or the given files/folders) into Chroma + BM25")
    s.add_argument("paths", nargs="*", help="files or folders (default: the kb dir)")
    s.add_argument("--rebuild", action="store_true", help="re-embed everything from scratch")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true",
                   help="print one JSON object: the report (the bar then shows only on a terminal)")

    s = sub.add_parser("status", help="embedder, documents, chunks, last ingest, keyword health check")
    s.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("ask", help="answer one question with citations")
    s.add_argument("question")
    s.add_argument("--history", help="JSON file: a list of {role, content} turns")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--topic", help="only sources of this kb topic (e.g. contracts, vendor-selection)")

    s = sub.add_parser("kb", help="knowledge-base checks")
    kb = s.add_subparsers(dest="kb_command", required=True)
    c = kb.add_parser("check", help="validate kb/: front matter, twins, curated sources, stale curated answers")
    c.add_argument("--fix-hashes", action="store_true", help="re-stamp curated source_hash after a human review")
    c.add_argument("--json", action="store_true", help="print one JSON object: problems, routing notes")
    c = kb.add_parser("coverage", help="share of the article's facts the kb states, in ja and en")
    c.add_argument("--json", action="store_true", help="print one JSON object: shares, counts, missing facts")
    m = kb.add_parser("maintenance", help="stale curated answers, reviews past BPO_REVIEW_DAYS, thin bank sections")
    m.add_argument("--json", action="store_true", help="print one JSON object: counts, rows")
    a = kb.add_parser("add-question", help="add an expected question to a section's bank (one line; kb check runs)")
    a.add_argument("section", metavar="DOC#SECTION")
    a.add_argument("question")
    a.add_argument("--lang", default=None, help="ja or en (default: the question's language)")

    s = sub.add_parser("eval", help="run Q&A regression suites")
    s.add_argument("--suite", action="append", required=True, help="suite JSONL (repeatable)")
    s.add_argument("--report", help="write report.md and report.html here")
    s.add_argument("--baseline", help="baseline JSON to gate against")
    s.add_argument("--update-baseline", action="store_true", help="write this run as the baseline")
    s.add_argument("--with-baseline-pipeline", action="store_true", help="also score the peer LangChain pipeline (hybrid, tuned on dev) side by side")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: only when stderr is a terminal)")
    s.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-case time limit (default: bpo_assistant.evals.runner.DEFAULT_TIMEOUT_S)")

    s = sub.add_parser("chat", help="serve the Gradio chat and the HTTP API (/api/ask, /v1/chat/completions)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=7860)
    s.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve beyond loopback without BPO_AUTH_FILE (anyone on the network can ask)")

    sub.add_parser("mcp", help="MCP server on stdio: tools ask, search, topics")

    s = sub.add_parser("feedback", help="user feedback")
    fb = s.add_subparsers(dest="feedback_command", required=True)
    e = fb.add_parser("export", help="write feedback as eval-suite JSONL cases")
    e.add_argument("--only-negative", action="store_true")
    e.add_argument("--out", help="file to write (default: stdout)")

    s = sub.add_parser("log", help="the question log")
    lg = s.add_subparsers(dest="log_command", required=True)
    st = lg.add_parser("stats", help="KPIs per ISO week and per day, refusals by reason (the admin tab's figures)")
    st.add_argument("--since", metavar="YYYY-MM-DD", help="only questions from this local date on")
    st.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("triage", help="refused, 👎 and low-confidence questions from the question log, as themes")
    s.add_argument("--status", action="append", help="未対応 対応中 対応済み 対象外 (repeatable; default: 未対応, 対応中)")
    s.add_argument("--json", action="store_true", help="print one JSON list of themes")
    tr = s.add_subparsers(dest="triage_command")
    r = tr.add_parser("resolve", help="fix and close questions by their #id")
    r.add_argument("ids", nargs="+", type=int, metavar="ID")
    r.add_argument("--as", dest="how", required=True,
                   metavar="question:DOC#SECTION|alias:TERM|curated:DOC#SECTION|case:SUITE|out-of-scope")
    r.add_argument("--alias", metavar="WORD", help="with alias:TERM, the word to add as a variant of TERM")
    r.add_argument("--doc", help="with case:SUITE, the document the answer must cite (default: a refuse case)")
    r.add_argument("--by", default=os.environ.get("USER") or "cli", help="who resolves it (default: $USER)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 ok, 1 a check or gate failed, 2 usage or a bad BPO_* setting, 130 interrupted (Ctrl-C)."""
    set_offline_env()
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bpo-assistant: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        code = _run(args, settings)
    except KeyboardInterrupt:
        print("bpo-assistant: interrupted", file=sys.stderr)
        return 130
    except MissingExtra as exc:
        print(f"bpo-assistant: {exc}", file=sys.stderr)
        return 2
    if argv is None and args.command in ONE_SHOT:
        skip_final_collections()
    return code


# Commands whose process ends right after their result: nothing is left to do but the interpreter's shutdown.
ONE_SHOT = frozenset({"ask"})


def skip_final_collections() -> None:
    """Let a one-shot command's process end without the interpreter's last garbage collections.

    After `ask` printed its answer, the shutdown took 2-3 s more on this 2-core machine (gdb: Py_FinalizeEx ->
    finalize_modules -> _PyGC_CollectNoFail; perf: most of that CPU in gc_collect_main, over the objects that
    chromadb, langchain, pydantic and the loaded index leave); the answer itself takes ~0.1 s. gc.freeze() moves
    those objects to the permanent generation, which these collections skip, and the rest of the normal exit still
    runs, in its order: non-daemon threads joined, the atexit hooks (logging.shutdown flushes the handlers;
    BPO_OTEL=1's bounded last export, tracing.exit_hook), stdout and stderr flushed with the usual
    broken-pipe handling and exit status. All that is skipped is reclaiming memory the OS reclaims anyway, and the
    __del__ of objects only a cycle holds: `ask` writes nothing through such objects (the question-log row is
    written before the answer prints, qlog.close; Chroma is only read). Not os._exit: that would skip the thread
    joins, atexit and the flush handling, each of which would need redoing by hand.

    Only when main() is the process's entry point (argv None: the console script, `python -m`): a caller passing
    argv (the tests, an embedding program) goes on living, and frozen objects would never be collected there.
    """
    import gc

    gc.freeze()


def _status_json(settings: Settings) -> int:
    from bpo_assistant.ingest.status import status_info

    info = status_info(settings)
    if info.get("failed"):
        info["failed"] = [{"path": path, "reason": reason} for path, reason in info["failed"]]
    print(json.dumps(info, ensure_ascii=False, indent=2, default=str))
    return 0 if info.get("ready") and info.get("healthy") else 1


def _ingest_json(settings: Settings, args: argparse.Namespace) -> int:
    """Same run and exit codes as cli_ingest, but stdout carries exactly one JSON object, on failure too."""
    from bpo_assistant.evals.cli import stdout_to_stderr, wants_progress
    from bpo_assistant.ingest.pipeline import run_ingest

    # a caller parsing stdout is rarely a terminal: a bar there would only fill its captured stderr
    progress = not args.quiet and wants_progress(args)
    with stdout_to_stderr():  # anything a library prints must not break the one-object contract
        try:
            report = run_ingest(settings, args.paths or None, rebuild=args.rebuild, progress=progress)
        except Exception as exc:  # noqa: BLE001 - as cli_ingest: any failure here is exit 2, nothing written
            print(f"ingest failed: {exc}", file=sys.stderr)
            payload, code = {"error": f"ingest failed: {exc}", "exit_code": 2}, 2
        else:
            for path, reason in report.failed:  # a human watching the log still sees what was skipped
                print(f"ingest: skipped {path}: {reason}", file=sys.stderr)
            code = 1 if report.failed else 0
            payload = {**report.to_json(), "exit_code": code}
    print(json.dumps(payload, ensure_ascii=False, indent=2))
    return code


def _kb_check_json(settings: Settings) -> int:
    from pathlib import Path

    from .kbcheck import check_kb, routing_notes

    problems = check_kb(Path(settings.kb_dir), settings)
    notes = routing_notes(settings)
    curated = len(list((Path(settings.kb_dir) / "curated").glob("*.yaml")))
    print(json.dumps({"problems": problems, "routing_notes": notes, "curated_answers": curated},
                     ensure_ascii=False, indent=2))
    return 1 if problems else 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command
    if cmd == "ingest":
        if args.json:
            return _ingest_json(settings, args)
        from bpo_assistant.ingest.pipeline import cli_ingest

        return cli_ingest(settings, args.paths, rebuild=args.rebuild, quiet=args.quiet)
    if cmd == "status":
        if args.json:
            return _status_json(settings)
        from bpo_assistant.ingest.pipeline import cli_status

        return cli_status(settings)
    if cmd == "ask":
        from .ask_cli import cli_ask

        return cli_ask(settings, args.question, args.history, as_json=args.json, topic=args.topic)
    if cmd == "kb":
        from .kbcheck import cli_check, cli_coverage

        if args.kb_command == "check":
            if args.json and not args.fix_hashes:
                return _kb_check_json(settings)
            return cli_check(settings, fix_hashes=args.fix_hashes)
        if args.kb_command == "maintenance":
            from .owners.maintenance import cli_maintenance

            return cli_maintenance(settings, as_json=args.json)
        if args.kb_command == "add-question":
            from .owners.fixes import cli_add_question

            return cli_add_question(settings, args.section, args.question, args.lang)
        return cli_coverage(settings, as_json=args.json)
    if cmd == "eval":
        from bpo_assistant.evals.runner import cli_eval

        return cli_eval(settings, args)
    if cmd == "chat":
        from .ui.app import serve

        return serve(settings, host=args.host, port=args.port, allow_unauthenticated=args.allow_unauthenticated)
    if cmd == "mcp":
        from .api.mcp_server import cli_mcp

        return cli_mcp(settings)
    if cmd == "feedback":
        from .feedback import cli_export

        return cli_export(settings, only_negative=args.only_negative, out=args.out)
    if cmd == "log":
        from .owners.kpi import cli_stats

        return cli_stats(settings, args.since, as_json=args.json)
    if cmd == "triage":
        from .owners.triage import cli_triage

        if args.triage_command == "resolve":
            from .owners.resolve import cli_resolve

            return cli_resolve(settings, args.ids, args.how, args.by, args.doc, args.alias)
        return cli_triage(settings, as_json=args.json, status=args.status)
    return 2


if __name__ == "__main__":
    sys.exit(main())
