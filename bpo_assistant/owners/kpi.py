"""KPIs of the question log, per day: the figures FAQ products report, each with its formula.

    質問数 / questions     rows in the log (the admin's own re-checks, channel "admin", are not counted)
    回答率 / answer rate   answered ÷ asked, answered = not refused
    拒否率 / refusal rate  refused ÷ asked
    低評価率 / dislike rate  👎 ÷ rated (rows linked to a 👍 or 👎 in the feedback store)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from ..settings import Settings
from .db import engine_for, questions
from .qlog import link_feedback

FORMULAS = {
    "answer_rate": "回答率 = 回答できた質問 ÷ 質問数 (answered ÷ asked; answered = not refused)",
    "refusal_rate": "拒否率 = 拒否した質問 ÷ 質問数 (refused ÷ asked)",
    "dislike_rate": "低評価率 = 👎 ÷ 評価された回答 (dislike rate = 👎 ÷ rated)",
}


@dataclass(frozen=True)
class DayKpi:
    day: str  # YYYY-MM-DD, local time
    asked: int
    answered: int
    refused: int
    rated: int
    disliked: int

    @property
    def answer_rate(self) -> float:
        return self.answered / self.asked if self.asked else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.refused / self.asked if self.asked else 0.0

    @property
    def dislike_rate(self) -> float:
        return self.disliked / self.rated if self.rated else 0.0

    def row(self) -> list:
        return [self.day, self.asked, f"{self.answer_rate:.0%}", f"{self.refusal_rate:.0%}",
                f"{self.dislike_rate:.0%}" if self.rated else "–", self.rated]


COLUMNS = ["日付 / day", "質問数 / asked", "回答率 / answer rate", "拒否率 / refusal rate", "低評価率 / dislike rate",
           "評価数 / rated"]


def daily(settings: Settings, since: float | None = None) -> list[DayKpi]:
    """One DayKpi per day with questions, oldest first."""
    link_feedback(settings)
    stmt = select(questions.c.at, questions.c.refused, questions.c.rating).where(questions.c.channel != "admin")
    if since is not None:
        stmt = stmt.where(questions.c.at >= since)
    days: dict[str, list[int]] = {}
    with engine_for(settings).connect() as conn:
        for at, refused, rating in conn.execute(stmt):
            d = days.setdefault(time.strftime("%Y-%m-%d", time.localtime(at)), [0, 0, 0, 0, 0])
            d[0] += 1
            d[1 if not refused else 2] += 1
            if rating is not None:
                d[3] += 1
                d[4] += rating < 0
    return [DayKpi(day, *counts) for day, counts in sorted(days.items())]
