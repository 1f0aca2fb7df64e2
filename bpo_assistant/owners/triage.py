"""The triage queue: refused, 👎 and low-confidence questions from the log, grouped into themes.

Themes: e5 query vectors, centred on the question bank's mean, clustered by scikit-learn's
AgglomerativeClustering (average linkage, cosine, a distance threshold instead of a cluster count). Centring is
why it works: e5-small puts any two questions at cosine 0.75–0.98, paraphrases and strangers alike; minus the
bank's mean, paraphrases of one question sit at 0.73–0.92 and different questions below 0.55 (measured on
Japanese paraphrase sets; see tests/test_triage.py). Themes come most frequent first, then newest.

A status per question (未対応/対応中/対応済み/対象外) lives in the database with who changed it and when; a
question with no status row is 未対応.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, or_, select, update

from ..settings import Settings
from .db import IN_PROGRESS, OPEN, OUT_OF_SCOPE, RESOLVED, STATUSES, engine_for, questions, triage
from .qlog import link_feedback

CLOSED = (RESOLVED, OUT_OF_SCOPE)
ANSWER_KINDS = ("extractive", "llm")  # kinds whose confidence is the router's; curated/comparison have their own


class TriageError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    id: int
    at: float
    question: str
    lang: str
    kind: str
    refused: bool
    reason: str
    confidence: float
    routed: tuple[tuple[str, float], ...]
    cited: tuple[str, ...]
    rating: int | None
    status: str
    changed_by: str
    why: str  # "refused" | "disliked" | "low-confidence"

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["routed"] = [list(r) for r in self.routed]
        d["cited"] = list(self.cited)
        d["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.at))
        return d


@dataclass(frozen=True)
class Theme:
    id: int  # the id of its oldest question: stable while that question stays in the queue
    label: str  # the most asked wording (ties: the newest)
    items: tuple[Item, ...]  # newest first

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def last_at(self) -> float:
        return max(i.at for i in self.items)

    @property
    def status(self) -> str:
        """The least advanced status of its questions: a theme is 対応済み only when every question is closed."""
        return min((i.status for i in self.items), key=STATUSES.index)

    def to_json(self) -> dict:
        return {"id": self.id, "label": self.label, "count": self.count, "status": self.status,
                "last": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.last_at)),
                "items": [i.to_json() for i in self.items]}


def _why(row, min_conf: float) -> str:
    if row.refused:
        return "refused"
    if row.rating is not None and row.rating < 0:
        return "disliked"
    return "low-confidence"


def items(settings: Settings, statuses: tuple[str, ...] | None = (OPEN, IN_PROGRESS),
          since: float | None = None) -> list[Item]:
    """Queue candidates, newest first. `statuses=None`: every status."""
    link_feedback(settings)
    q, t = questions, triage
    wanted = or_(q.c.refused.is_(True), q.c.rating < 0,
                 and_(q.c.kind.in_(ANSWER_KINDS), q.c.confidence < settings.triage_min_confidence))
    stmt = (select(q, t.c.status, t.c.changed_by).select_from(q.outerjoin(t, t.c.question_id == q.c.id))
            .where(wanted, q.c.kind.not_in(("prompt", "error")), q.c.question != "", q.c.channel != "admin")
            .order_by(q.c.at.desc()))  # "admin": an owner re-asking after a fix is not a user's question
    if since is not None:
        stmt = stmt.where(q.c.at >= since)
    with engine_for(settings).connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        status = r.status or OPEN
        if statuses is not None and status not in statuses:
            continue
        out.append(Item(r.id, r.at, r.question, r.lang, r.kind, bool(r.refused), r.reason or "", r.confidence,
                        tuple((s, float(p)) for s, p in json.loads(r.routed or "[]")),
                        tuple(json.loads(r.cited or "[]")), r.rating, status, r.changed_by or "",
                        _why(r, settings.triage_min_confidence)))
    return out


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def themes(found: list[Item], embedder, center: np.ndarray | None, distance: float) -> list[Theme]:
    """Group `found` into themes; identical wordings (NFKC, case) are embedded once and always share one."""
    if not found:
        return []
    from sklearn.cluster import AgglomerativeClustering

    texts = list(dict.fromkeys(_key(i.question) for i in found))
    if len(texts) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        vecs = np.asarray(embedder.queries(texts), dtype=np.float64)
        if center is not None:
            vecs = vecs - center
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
        labels = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine",
                                         linkage="average").fit_predict(vecs)
    label_of = dict(zip(texts, labels))
    groups: dict[int, list[Item]] = {}
    for i in found:
        groups.setdefault(int(label_of[_key(i.question)]), []).append(i)
    out = []
    for members in groups.values():
        members.sort(key=lambda i: -i.at)
        counts: dict[str, int] = {}
        for i in members:
            counts[i.question] = counts.get(i.question, 0) + 1
        label = max(counts, key=lambda w: (counts[w], max(i.at for i in members if i.question == w)))
        out.append(Theme(min(i.id for i in members), label, tuple(members)))
    return sorted(out, key=lambda th: (-th.count, -th.last_at))


def bank_center(assistant) -> np.ndarray | None:
    vecs = getattr(assistant.knowledge(), "question_vectors", None)
    return None if vecs is None or len(vecs) < 2 else np.asarray(vecs, dtype=np.float64).mean(axis=0)


def queue(settings: Settings, assistant, statuses=(OPEN, IN_PROGRESS)) -> list[Theme]:
    return themes(items(settings, statuses), assistant.embedder, bank_center(assistant),
                  settings.triage_theme_distance)


def set_status(settings: Settings, ids, status: str, by: str, resolution: str = "") -> tuple[list[int], list[str]]:
    """Set `status` on the questions `ids`. Returns (changed ids, messages for the ones left alone): a question
    another owner already closed is not re-closed (the second admin sees who did it)."""
    if status not in STATUSES:
        raise TriageError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if not by:
        raise TriageError("who changed it is required")
    ids = [int(i) for i in ids]
    changed, skipped = [], []
    now = time.time()
    with engine_for(settings).begin() as conn:
        known = {r.id for r in conn.execute(select(questions.c.id).where(questions.c.id.in_(ids)))}
        current = {r.question_id: r for r in conn.execute(select(triage).where(triage.c.question_id.in_(ids)))}
        for i in ids:
            if i not in known:
                skipped.append(f"#{i}: no such question in the log (purged or never logged)")
                continue
            cur = current.get(i)
            if cur is None:
                conn.execute(triage.insert().values(question_id=i, status=status, changed_by=by, changed_at=now,
                                                    resolution=resolution))
                changed.append(i)
                continue
            if cur.status in CLOSED and status in CLOSED:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(cur.changed_at))
                skipped.append(f"#{i}: already {cur.status} by {cur.changed_by} at {when}"
                               + (f" ({cur.resolution})" if cur.resolution else ""))
                continue
            # Guarded on the status read above: of two concurrent owners, only one update matches.
            done = conn.execute(update(triage).where(triage.c.question_id == i, triage.c.status == cur.status)
                                .values(status=status, changed_by=by, changed_at=now, resolution=resolution))
            (changed if done.rowcount == 1 else skipped).append(i if done.rowcount == 1 else f"#{i}: changed meanwhile")
    return changed, skipped


def render_text(found: list[Theme]) -> str:
    if not found:
        return "triage queue is empty"
    lines = []
    for th in found:
        lines.append(f"theme {th.id} [{th.status}] ×{th.count}  「{th.label}」")
        for i in th.items:
            top = f" → {i.routed[0][0]} ({i.routed[0][1]:.2f})" if i.routed else ""
            who = f" by {i.changed_by}" if i.changed_by else ""
            lines.append(f"  #{i.id} {time.strftime('%m-%d %H:%M', time.localtime(i.at))} {i.why:<14} "
                         f"[{i.status}{who}] {i.question}{top}")
    return "\n".join(lines)


def cli_triage(settings: Settings, as_json: bool = False, status: list[str] | None = None) -> int:
    """`bpo-assistant triage [--status S …] [--json]`: the queue as themes."""
    from bpo_assistant.ingest.pipeline import ensure_index

    from ..assistant import Assistant

    for s in status or ():
        if s not in STATUSES:
            print(f"error: unknown status {s!r}; one of {', '.join(STATUSES)}", file=sys.stderr)
            return 2
    ensure_index(settings)
    found = queue(settings, Assistant.from_settings(settings), tuple(status) if status else (OPEN, IN_PROGRESS))
    if as_json:
        print(json.dumps([th.to_json() for th in found], ensure_ascii=False))
    else:
        print(render_text(found))
    return 0
