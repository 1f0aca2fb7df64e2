"""KPIs of the question log, per day and per ISO week: the figures FAQ products report, each with its formula.

    質問数 / questions     rows in the log (the admin's own re-checks, channel "admin", are not counted)
    回答率 / answer rate   answered ÷ asked, answered = not refused
    拒否率 / refusal rate  refused ÷ asked, also split by reason category (reason_category)
    低評価率 / dislike rate  👎 ÷ rated (rows linked to a 👍 or 👎 in the feedback store)
    キュレート回答率 / curated share  answers of kind "curated" ÷ answered
    p95 応答時間 / p95 latency  the 95th percentile of every counted question's latency_ms (refusals wait too),
                   by bpo_assistant.stats.percentile, the function behind the eval report's p95

The refusal reason needs no column of its own: question_log.reason already holds Answer.reason. That text carries
the case's details (「weak dense match 0.812」, 「names 'トヨタ', …」), so it is reduced to a category when counted,
not when stored: the raw reason stays for triage, and a category rule changed later applies to the old rows too.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select

from ..settings import Settings
from ..stats import percentile
from .db import engine_for, questions
from .qlog import link_feedback

FORMULAS = {
    "answer_rate": "回答率 = 回答できた質問 ÷ 質問数 (answered ÷ asked; answered = not refused)",
    "refusal_rate": "拒否率 = 拒否した質問 ÷ 質問数 (refused ÷ asked)",
    "reason_rate": "理由別拒否率 = その理由で拒否した質問 ÷ 質問数 (refused for that reason ÷ asked)",
    "dislike_rate": "低評価率 = 👎 ÷ 評価された回答 (dislike rate = 👎 ÷ rated)",
    "curated_share": "キュレート回答率 = キュレート回答 ÷ 回答できた質問 (curated-hit share = kind curated ÷ answered)",
    "p95_latency": "p95 応答時間 = 期間内の全質問 (拒否を含む) の応答時間 n 件を昇順に並べ、位置 (n−1)×0.95 の値 "
                   "(間は線形補間; 評価レポートの p95 と同じ bpo_assistant.stats.percentile) "
                   "(p95 latency = sorted latencies x, x[(n−1)·0.95] linearly interpolated, as in the eval report)",
}

# Reasons whose variable part is not a number, a quote or a parenthesis: one category each.
_NAMED = ((re.compile(r" is covered outside topic "), "covered outside the topic filter"),)
_DETAILS = re.compile(r"\s*[(（][^)）]*[)）]")  # 「(0.33)」「(派遣法)」「(大阪, 福岡)」
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|「[^」]*」")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_category(reason: str, kind: str = "") -> str:
    """The refusal reason without its case's details, so equal causes count together. A reason nobody wrote
    (an error answer) counts under its kind."""
    text = (reason or "").strip()
    if not text:
        return kind or "unknown"
    for pattern, name in _NAMED:
        if pattern.search(text):
            return name
    text = _NUMBER.sub("", _QUOTED.sub("…", _DETAILS.sub("", text)))
    return " ".join(text.split()).strip(" :,.")[:80] or kind or "unknown"


@dataclass(frozen=True)
class Kpi:
    period: str  # YYYY-MM-DD for a day, YYYY-Www for an ISO week; local time
    asked: int
    answered: int
    refused: int
    rated: int
    disliked: int
    curated: int = 0
    reasons: tuple[tuple[str, int], ...] = ()  # refusals per reason_category, most frequent first
    p95_ms: float | None = None  # FORMULAS["p95_latency"]; None for a period without questions

    @property
    def answer_rate(self) -> float:
        return self.answered / self.asked if self.asked else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.refused / self.asked if self.asked else 0.0

    @property
    def dislike_rate(self) -> float:
        return self.disliked / self.rated if self.rated else 0.0

    @property
    def curated_share(self) -> float:
        return self.curated / self.answered if self.answered else 0.0

    def reason_rate(self, reason: str) -> float:
        return dict(self.reasons).get(reason, 0) / self.asked if self.asked else 0.0

    def row(self) -> list:
        return [self.period, self.asked, f"{self.answer_rate:.0%}", f"{self.refusal_rate:.0%}",
                f"{self.dislike_rate:.0%}" if self.rated else "–", self.rated,
                f"{self.curated_share:.0%}" if self.answered else "–",
                f"{self.p95_ms:.0f} ms" if self.p95_ms is not None else "–"]

    def to_json(self) -> dict:
        return {"period": self.period, "asked": self.asked, "answered": self.answered, "refused": self.refused,
                "rated": self.rated, "disliked": self.disliked, "curated": self.curated,
                "answer_rate": self.answer_rate, "refusal_rate": self.refusal_rate,
                "dislike_rate": self.dislike_rate if self.rated else None,
                "curated_share": self.curated_share if self.answered else None,
                "p95_latency_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
                "refusals_by_reason": [{"reason": r, "count": n, "rate": n / self.asked} for r, n in self.reasons]}

    def reason_rows(self) -> list[list]:
        return [[self.period, reason, n, f"{n / self.asked:.0%}", f"{n / self.refused:.0%}"]
                for reason, n in self.reasons]


COLUMNS = ["期間 / period", "質問数 / asked", "回答率 / answer rate", "拒否率 / refusal rate", "低評価率 / dislike rate",
           "評価数 / rated", "キュレート回答率 / curated share", "p95 応答時間 / p95 latency"]
REASON_COLUMNS = ["期間 / period", "拒否理由 / reason", "件数 / count", "理由別拒否率 / ÷ asked", "拒否内の割合 / ÷ refused"]


def day_of(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at))


def week_of(at: float) -> str:
    # ISO 8601 weeks (Monday first; the week of 2026-12-31 may be 2026-W53, of 2027-01-01 too): a week never
    # splits at a year's end, so weekly rows compare like with like.
    year, week, _ = datetime.date.fromtimestamp(at).isocalendar()
    return f"{year}-W{week:02d}"


def daily(settings: Settings, since: float | None = None) -> list[Kpi]:
    """One Kpi per day with questions, oldest first."""
    return aggregate(log_rows(settings, since), day_of)


def weekly(settings: Settings, since: float | None = None) -> list[Kpi]:
    """One Kpi per ISO week with questions, oldest first."""
    return aggregate(log_rows(settings, since), week_of)


def log_rows(settings: Settings, since: float | None = None) -> list:
    """(at, refused, rating, kind, reason, latency_ms) of every counted question, 👍/👎 linked first; for
    aggregate()."""
    link_feedback(settings)
    c = questions.c
    stmt = select(c.at, c.refused, c.rating, c.kind, c.reason, c.latency_ms).where(c.channel != "admin")
    if since is not None:
        stmt = stmt.where(c.at >= since)
    with engine_for(settings).connect() as conn:
        return conn.execute(stmt).all()


def aggregate(rows: Iterable, period_of: Callable[[float], str]) -> list[Kpi]:
    """rows of (at, refused, rating, kind, reason, latency_ms) → one Kpi per period, oldest first."""
    counts: dict[str, list[int]] = {}
    reasons: dict[str, Counter] = {}
    latencies: dict[str, list[float]] = {}
    for at, refused, rating, kind, reason, latency_ms in rows:
        key = period_of(at)
        latencies.setdefault(key, []).append(float(latency_ms or 0.0))
        d = counts.setdefault(key, [0, 0, 0, 0, 0, 0])
        d[0] += 1
        if refused:
            d[2] += 1
            reasons.setdefault(key, Counter())[reason_category(reason, kind)] += 1
        else:
            d[1] += 1
            d[5] += kind == "curated"
        if rating is not None:
            d[3] += 1
            d[4] += rating < 0
    return [Kpi(key, *d, reasons=tuple(sorted(reasons.get(key, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))),
                p95_ms=percentile(latencies[key], 95))
            for key, d in sorted(counts.items())]


def cli_stats(settings: Settings, since: str | None = None, as_json: bool = False) -> int:
    """`bpo-assistant log stats [--since YYYY-MM-DD] [--json]`: the admin tab's KPI tables, weekly then daily."""
    start = None
    if since:
        try:
            start = time.mktime(time.strptime(since, "%Y-%m-%d"))  # local midnight, as the periods are local
        except ValueError:
            print(f"error: --since {since!r}: use YYYY-MM-DD", file=sys.stderr)
            return 2
    logged = log_rows(settings, start)
    weeks, days = aggregate(logged, week_of), aggregate(logged, day_of)
    if as_json:
        print(json.dumps({"formulas": FORMULAS, "weekly": [w.to_json() for w in weeks],
                          "daily": [d.to_json() for d in days]}, ensure_ascii=False, indent=2))
        return 0
    for title, kpis in (("週次 / weekly", weeks), ("日次 / daily", days)):
        print(f"{title}\n" + "\t".join(COLUMNS))
        print("\n".join("\t".join(map(str, k.row())) for k in kpis) or "(なし / none)")
        print()
    print("拒否理由別 / refusals by reason\n" + "\t".join(REASON_COLUMNS))
    print("\n".join("\t".join(map(str, r)) for w in weeks for r in w.reason_rows()) or "(なし / none)")
    print("\n" + "\n".join(FORMULAS.values()))
    return 0
