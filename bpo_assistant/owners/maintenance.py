"""The knowledge owners' maintenance list: what in the kb needs a person again, and whose it is.

Three kinds of row (issue 10 "Maintenance"):
- `stale`: a curated answer whose cited section text changed since its review (the loader's own `stale`, the
  same flag that puts the notice on the answer in the chat);
- `review-due`: a curated answer or a kb document whose `reviewed:` date is older than BPO_REVIEW_DAYS (or not
  a date at all, which no one can age);
- `few-questions`: a question-bank section below the minimum, counted by `kb check`'s own code;
- `draft`: a curated answer still marked `status: draft` (owners/drafts.py writes them; they are served, so
  they stay on this list until a reviewer deletes the line).
Read-only: it lists, the owners fix (kb check --fix-hashes after a re-review, add-question, a new date).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from ..curated import load_curated
from ..kbcheck import short_sections
from ..kbfiles import KbFormatError, load_kb_docs, split_front_matter
from ..settings import Settings

KINDS = ("stale", "review-due", "few-questions", "draft")
_TITLES = {"stale": "出典が変わった確認済み回答 / stale curated answers",
           "review-due": "レビュー期限切れ / past their review date",
           "few-questions": "想定質問が足りないセクション / sections with too few expected questions",
           "draft": "レビュー待ちの下書き回答 / draft curated answers to review"}


@dataclass(frozen=True)
class Row:
    kind: str  # one of KINDS
    item: str  # curated id, document id, or doc#section
    lang: str
    path: str
    owner: str  # "" for a bank section: the document's owner is shown when the document has one
    reviewed: str
    detail: str


def _day(value) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _due(reviewed, today: date, days: int) -> str | None:
    """Why `reviewed` is past due, or None when it is recent enough."""
    day = _day(reviewed)
    if day is None:
        return f"reviewed {reviewed!r} is not a date (YYYY-MM-DD)"
    age = (today - day).days
    return f"reviewed {age} days ago (limit {days})" if day < today - timedelta(days=days) else None


def maintenance(settings: Settings, today: date | None = None) -> list[Row]:
    """Every row, kind by kind in KINDS order, each kind sorted by path."""
    today = today or date.today()
    kb_dir = Path(settings.kb_dir)
    docs, _ = load_kb_docs(kb_dir)
    answers, _ = load_curated(kb_dir, docs)  # broken curated files are `kb check`'s to report, not ours
    rows = [Row("stale", a.id, a.lang, a.path, a.owner, a.reviewed, "cited text changed since review: "
                + ", ".join(a.stale_sections)) for a in answers if a.stale]
    owners: dict[tuple[str, str], str] = {}
    for a in answers:
        why = _due(a.reviewed, today, settings.review_days)
        if why:
            rows.append(Row("review-due", a.id, a.lang, a.path, a.owner, a.reviewed, why))
    for (lang, doc_id), doc in sorted(docs.items()):
        try:
            meta, _, _ = split_front_matter(Path(doc.path).read_text(encoding="utf-8"), doc.path)
        except (OSError, KbFormatError):
            continue
        owners[(lang, doc_id)] = str(meta.get("owner") or "")
        why = _due(meta.get("reviewed"), today, settings.review_days)
        if why:
            rows.append(Row("review-due", doc_id, lang, doc.path, owners[(lang, doc_id)], str(meta.get("reviewed")),
                            why))
    for bank, lang, label, n, needed in short_sections(kb_dir, docs):
        rows.append(Row("few-questions", label, lang, str(bank), owners.get((lang, label.split("#")[0]), ""), "",
                        f"{n} expected question(s), at least {needed} needed"))
    rows += [Row("draft", a.id, a.lang, a.path, a.owner, a.reviewed, "draft from " + ", ".join(
        f"{d}#{s}" for d, s, _ in a.sources) + "; review it, then delete `status: draft`")
             for a in answers if _is_draft(a.path)]
    return sorted(rows, key=lambda r: (KINDS.index(r.kind), r.path, r.item))


def _is_draft(path: str) -> bool:
    """The loader keeps no `status`, so it is read from the file (a draft marker the query path ignores)."""
    from ..curated import load_raw

    try:
        return str(load_raw(Path(path)).get("status", "")).strip().lower() == "draft"
    except Exception:  # noqa: BLE001 - it loaded a moment ago; a file changed meanwhile is the next run's
        return False


def render_text(rows: list[Row]) -> str:
    if not rows:
        return "maintenance: nothing to do"
    lines = []
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        if mine:
            lines.append(f"{_TITLES[kind]} ({len(mine)})")
            lines += [f"  {r.path}  {r.item} [{r.lang}]  owner {r.owner or '-'}  {r.detail}" for r in mine]
    return "\n".join(lines)


def cli_maintenance(settings: Settings, as_json: bool = False) -> int:
    """`bpo-assistant kb maintenance [--json]`: exit 0 whatever it lists (a to-do list, not a gate; `kb check`
    is the gate)."""
    rows = maintenance(settings)
    if as_json:
        print(json.dumps({"review_days": settings.review_days, "today": date.today().isoformat(),
                          "counts": {k: sum(r.kind == k for r in rows) for k in KINDS},
                          "rows": [asdict(r) for r in rows], "exit_code": 0}, ensure_ascii=False))
    else:
        print(render_text(rows), file=sys.stdout)
    return 0
