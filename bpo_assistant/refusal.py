"""The refusal: the fixed sentinel, why (Answer.reason), and the nearest questions the kb can answer."""

from __future__ import annotations

from . import guard
from .knowledge import Knowledge
from .turn import Turn
from .types import Answer


def nearest_questions(turn: Turn, kb: Knowledge, n: int = 3) -> list[str]:
    """The curated questions nearest to the question (one per curated answer), else document titles."""
    out: list[str] = []
    if len(turn.question_sims):
        seen: set[str] = set()
        for i in turn.question_sims.argsort()[::-1]:
            row = kb.questions[i]
            if row.kind != "curated" or row.lang != turn.lang or row.curated in seen:
                continue
            answer = kb.curated_by_base.get((row.curated, turn.lang))
            if answer is None:
                continue
            seen.add(row.curated)
            out.append(answer.questions[0])  # the answer's headline phrasing, not a colloquial variant
            if len(out) >= n:
                break
    if len(out) < n:
        titles = [kb.index.chunks[cid].title for cid, _ in kb.retriever.dense(turn.qvec, turn.lang, 8)
                  if cid in kb.index.chunks] if turn.qvec.shape[-1] > 1 else []
        out += [t for t in dict.fromkeys(titles) if t not in out][: n - len(out)]
    return out


def refuse(turn: Turn, kb: Knowledge, reason: str = "") -> Answer:
    reason = reason or turn.reason or "no evidence"
    nearest = nearest_questions(turn, kb)
    lines = [guard.refusal_text(turn.lang)]
    if nearest:
        lines += ["", guard.NEAREST_LEAD[turn.lang]] + [f"- {q}" for q in nearest]
    return Answer("\n".join(lines), refused=True, standalone_query=turn.query, lang=turn.lang, kind="refusal",
                  notice=turn.notice, suggestions=tuple(nearest), reason=reason, timings=turn.timer.done("refuse"))
