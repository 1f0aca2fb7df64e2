"""Rewrite a follow-up into a standalone query without an LLM.

Follow-ups omit what the conversation already named: 「じゃあ準委任とはどう違う？」 after a question on 請負
means 請負 vs 準委任; "and what about shared services?" after BPO vs ITO keeps the comparison. We carry the
glossary terms of the earlier user turns into the new question when it lacks them. The result is shown in
the UI, so it must read as a question a person could have typed.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from .glossary import Glossary, Term
from .text import detect_lang

_COMPARE = re.compile(r"違い|違う|ちがい|ちがう|比較|比べ|異な|差|vs\.?|versus|differ|compare|comparison", re.I)
_FOLLOW_CUE = re.compile(
    r"^(じゃあ|では|それでは|それ|その|この|あと|ちなみに|なら|それなら|and\b|what about|how about|then\b|so\b)|"
    r"(それ|その|これ|この|they|them|it|that|those|this)\b",
    re.I,
)
_DEMONSTRATIVE = re.compile(r"それ|その|これ|この|あれ|そっち|こっち|\d+つ目|[一二三四五]つ目|\b(it|its|they|them|that|those|this)\b", re.I)
_MAX_FOLLOW_CHARS = 40  # longer questions are almost always self-contained


def previous_terms(history: Sequence[Mapping[str, str]], glossary: Glossary) -> list[Term]:
    """Glossary terms of earlier user turns, most recent turn first."""
    terms: list[Term] = []
    for turn in reversed(list(history)):
        if turn.get("role") != "user":
            continue
        for t in glossary.find(str(turn.get("content", ""))):
            if t.term not in {x.term for x in terms}:
                terms.append(t)
        if terms:
            return terms
    return terms


def _last_user_turn(history: Sequence[Mapping[str, str]]) -> str:
    for turn in reversed(list(history)):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()[:200]
    return ""


def standalone_query(question: str, history: Sequence[Mapping[str, str]], glossary: Glossary,
                     names_own_subject: Callable[[str], bool] | None = None) -> str:
    """`names_own_subject(question)` tells whether the question names a specific subject of its own (e.g.
    「マーケティングは？」 after a question on contact centres): such a question is not given the earlier topic."""
    question = question.strip()
    if not history:
        return question
    prior = previous_terms(history, glossary)
    if not prior:
        # No glossary term earlier: a pointing follow-up (「その人って何をやるの？」) still needs the earlier
        # question, so carry its text.
        last = _last_user_turn(history)
        if last and _DEMONSTRATIVE.search(question) and len(question) <= _MAX_FOLLOW_CHARS:
            return f"{last} → {question}"
        return question
    current = glossary.find(question)
    comparing = bool(_COMPARE.search(question))
    looks_follow = bool(_FOLLOW_CUE.search(question)) or len(question) <= _MAX_FOLLOW_CHARS
    if not looks_follow:
        return question
    lang = detect_lang(question)
    names = {t.term for t in current}
    carried = [t for t in prior if t.term not in names]
    if comparing and len(current) == 1 and carried:
        return _join(lang, [carried[0], current[0]], compare=True, tail=question)
    pointing = bool(_DEMONSTRATIVE.search(question))
    if carried and not current and not pointing and names_own_subject and names_own_subject(question):
        return question
    if carried and (not current or pointing):
        # 「それってBPOの前にやるもの？」 after 「BPRって何？」: それ is BPR even though BPO is named.
        return _join(lang, carried[:2], compare=comparing and len(carried) >= 2 and not current, tail=question)
    # The question names its own subject ("what about shared services?"): it already stands alone.
    return question


def _join(lang: str, terms: list[Term], compare: bool, tail: str) -> str:
    names = [t.label(lang) for t in terms]
    if lang == "en":
        head = " and ".join(names)
        return f"{head}: {tail}" if not compare else f"Difference between {head}: {tail}"
    head = "と".join(names)
    return f"{head}の違い：{tail}" if compare else f"{head}について：{tail}"
