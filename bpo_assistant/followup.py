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
from .text import detect_lang, split_sentences

_COMPARE = re.compile(r"違い|違う|ちがい|ちがう|比較|比べ|異な|差|vs\.?|versus|differ|compare|comparison", re.I)
_FOLLOW_CUE = re.compile(
    r"^(じゃあ|では|それでは|それ|その|この|あと|ちなみに|なら|それなら|and\b|what about|how about|then\b|so\b)|"
    r"(それ|その|これ|この|they|them|it|that|those|this)\b",
    re.I,
)
_DEMONSTRATIVE = re.compile(r"それ|その|これ|この|あれ|そっち|こっち|\d+つ目|[一二三四五]つ目|\b(it|its|they|them|that|those|this)\b", re.I)
_MAX_FOLLOW_CHARS = 40  # longer questions are almost always self-contained
_KANJI_NUM = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_EN_ORD = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "last": -1}
_ORDINAL = re.compile(
    r"(?P<n>\d+|[一二三四五六七八九])\s*(?:つ目|番目|点目|個目)|(?P<last>最後)の|"
    r"\b(?:the\s+)?(?P<en>first|second|third|fourth|fifth|sixth|last)\s+(?:one|point|item|benefit|step|thing)",
    re.I,
)
_ITEM = re.compile(r"^\s*(?:[-*・•]|\d+[.)．]|[①-⑩])\s*(.+?)\s*$")
_CIRCLED = re.compile(r"[①-⑩]")
_MARKERS = re.compile(r"\s*\[\d+\]")


def ordinal_item(question: str, history: Sequence[Mapping[str, str]]) -> str:
    """「3つ目のやつ」 / "the second one": the item of that number in the last answer's list, or ""."""
    m = _ORDINAL.search(question)
    if not m:
        return ""
    if m.group("n"):
        n = int(m.group("n")) if m.group("n").isdigit() else _KANJI_NUM[m.group("n")]
    else:
        n = -1 if m.group("last") else _EN_ORD[m.group("en").lower()]
    items = _answer_items(_last_turn(history, "assistant"))
    if not items or n == 0 or n > len(items):
        return ""
    item = _MARKERS.sub("", items[n - 1] if n > 0 else items[-1]).strip("。、 ")
    return re.sub(r"(です|でした|など)$", "", item)[:120]


_FORMER = re.compile(r"前者|\bthe former\b", re.I)
_LATTER = re.compile(r"後者|\bthe latter\b", re.I)


def former_latter(question: str, history: Sequence[Mapping[str, str]], glossary: Glossary) -> str:
    """「前者のほうで気をつけることは？」 / "the latter": the first or the last term of the first sentence of the last
    answer that names two or more (「主に委任・準委任契約と請負契約があります」), else of the last question; or ""."""
    former, latter = bool(_FORMER.search(question)), bool(_LATTER.search(question))
    if former == latter:
        return ""
    lang = detect_lang(question)
    for text in (_last_turn(history, "assistant"), _last_user_turn(history)):
        for sentence in split_sentences(_MARKERS.sub("", text)):
            terms = glossary.find(sentence)
            if len(terms) >= 2:
                return (terms[0] if former else terms[-1]).label(lang)
    return ""


def _answer_items(answer: str) -> list[str]:
    """List items of an answer: bullet or numbered lines, or an inline ①…⑤ enumeration."""
    lines = [m.group(1) for line in answer.splitlines() if (m := _ITEM.match(line))]
    if len(lines) >= 2:
        return lines
    parts = _CIRCLED.split(answer)
    if len(parts) > 2:
        return [re.split(r"[、,。]", p.strip())[0] for p in parts[1:] if p.strip()]
    return _inline_items(answer)


_LEAD_IN = re.compile(r"^(?:そして|また|および|さらに|and)\s*", re.I)
_TAIL = re.compile(r"(?:など|等|を|が|は|も)[^、]*$|です$|\.$")


def _inline_items(answer: str) -> list[str]:
    """「対象業務、立ち上げの速さ、費用、実績、そしてセキュリティなどを確認しましょう。」: the parts of the first
    sentence that enumerates three or more with 、 (a chat reply rarely bullets a short list); a lead-in part
    (「ポイントは」) is not an item, and the last part loses its connective and the verb after it."""
    for sentence in split_sentences(_MARKERS.sub("", answer)):
        parts = [p.strip() for p in re.split(r"[、,]", sentence.rstrip("。"))]
        if len(parts) < 3:
            continue
        if parts[0].endswith(("は", "には")):
            parts = parts[1:]
        parts[-1] = _TAIL.sub("", _LEAD_IN.sub("", parts[-1]))
        return [p for p in parts if p] if len(parts) >= 3 else []
    return []


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


def _last_turn(history: Sequence[Mapping[str, str]], role: str) -> str:
    for turn in reversed(list(history)):
        if turn.get("role") == role and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return ""


def _last_user_turn(history: Sequence[Mapping[str, str]]) -> str:
    return _last_turn(history, "user")[:200]


def _referent(history: Sequence[Mapping[str, str]]) -> str:
    """What 「それ」「その人」 points at: the last answer's leading statement, else the last question."""
    return _last_answer_sentence(history) or _last_user_turn(history)


def _last_answer_sentence(history: Sequence[Mapping[str, str]]) -> str:
    """The first real statement of the last answer (skipping 「はい。」 and lead lines such as 「…によると:」)."""
    from .guard import REFUSAL_EN, REFUSAL_JA

    answer = _last_turn(history, "assistant")
    if REFUSAL_JA in answer or REFUSAL_EN in answer:  # a refusal names nothing to point at
        return ""
    for line in answer.splitlines():
        line = _MARKERS.sub("", _ITEM.sub(r"\1", line)).strip()
        if not line or line.endswith((":", "：")) or line.startswith(("出典", "Sources", "[")):
            continue
        for sentence in split_sentences(line):
            if len(sentence) >= 12:
                return sentence[:160]
    return ""


def standalone_query(question: str, history: Sequence[Mapping[str, str]], glossary: Glossary,
                     names_own_subject: Callable[[str], bool] | None = None,
                     subjects: Callable[[str], list[str]] | None = None) -> str:
    """`names_own_subject(question)` tells whether the question names a specific subject of its own (e.g.
    「マーケティングは？」 after a question on contact centres): such a question is not given the earlier topic.
    `subjects(text)` gives the specific non-glossary nouns of a text (セキュリティ), carried beside the terms."""
    question = question.strip()
    if not history:
        return question
    short = len(question) <= _MAX_FOLLOW_CHARS
    if short and (named := former_latter(question, history, glossary)):
        # 「前者のほうで気をつけることは？」 keeps its own ask (気をつけること); only the pointer becomes the term.
        return _LATTER.sub(named, _FORMER.sub(named, question))
    item = ordinal_item(question, history) if short else ""
    if item:
        # 「3つ目のやつ」 points into the last answer's list: the item is the subject, the earlier question in
        # brackets gives its category (benefits, vendor checks); the pointer words would only add noise.
        # Item first measured best on the dev follow-ups (vs question first, or the item alone).
        last = _last_user_turn(history)
        if not last:
            return item
        return f"{item} ({last})" if detect_lang(question) == "en" else f"{item}（{last}）"
    prior = previous_terms(history, glossary)
    if not prior:
        # No glossary term earlier: a pointing follow-up (「その人って何をやるの？」) still needs the earlier
        # question, so carry its text.
        last = _referent(history)
        if last and _DEMONSTRATIVE.search(question) and len(question) <= _MAX_FOLLOW_CHARS:
            return f"{last} → {question}"
        # 「具体的にはどこを見ればいい？」 after 「外部に任せたときのセキュリティ面は心配ないの？」: no term, but a subject.
        if (subjects and len(question) <= _MAX_FOLLOW_CHARS and not (names_own_subject and names_own_subject(question))
                and (extra := _earlier_subjects(question, history, subjects))):
            return _join(detect_lang(question), [], compare=False, tail=question, extra=extra[:2])
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
    if carried and not current and pointing and (last := _referent(history)):
        # 「その人って何をやるの？」: その points at something the last turn named (専任担当者), which the
        # glossary terms alone (BPO) would lose, so carry the answer's leading statement.
        return f"{last} → {question}"
    if carried and (not current or pointing):
        # 「それってBPOの前にやるもの？」 after 「BPRって何？」: それ is BPR even though BPO is named.
        # 「具体的には何を確認すればいい？」 after 「BPO導入でセキュリティって大丈夫？」: the subject was セキュリティ, which
        # is no glossary term, so BPO alone would lose it; the earlier turn's own specific nouns come along.
        extra = [] if pointing or not subjects else _earlier_subjects(question, history, subjects)
        return _join(lang, carried[:2], compare=comparing and len(carried) >= 2 and not current, tail=question,
                     extra=extra[:2])
    # The question names its own subject ("what about shared services?"): it already stands alone.
    return question


def _earlier_subjects(question: str, history: Sequence[Mapping[str, str]], subjects: Callable[[str], list[str]]):
    """The last question's subjects that the follow-up does not name itself."""
    return [w for w in subjects(_last_user_turn(history)) if w not in question]


def _join(lang: str, terms: list[Term], compare: bool, tail: str, extra: Sequence[str] = ()) -> str:
    names = [t.label(lang) for t in terms]
    if extra and not compare:
        names = [*names, *extra]
    if lang == "en":
        head = " and ".join(names)
        return f"{head}: {tail}" if not compare else f"Difference between {head}: {tail}"
    head = "と".join(names)
    return f"{head}の違い：{tail}" if compare else f"{head}について：{tail}"
