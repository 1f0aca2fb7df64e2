"""Answerability gate: answer only when the evidence is strong, otherwise refuse with the fixed sentinel.

Three checks, each cheap and explainable (thresholds in Settings, calibrated on evals/suites/dev.jsonl):
1. dense similarity of the best chunk (e5 cosines are compressed: unrelated text still scores ~0.75);
2. the question's content words must be known to the kb: a question about 時給 or the weather uses words
   our documents never contain;
3. the answer type: a question asking for an amount, a company name or a legal article needs evidence of
   that type, and the kb holds no prices, market sizes, vendor names or statute numbers.
The cue words of each check live in phrasebook.py (pb.ASKS_MONEY …); this module holds what is done with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import phrasebook as pb
from .phrasebook import POINTER_NOUNS  # noqa: F401  (turn.py and curated.py read it as gate.POINTER_NOUNS)
from .text import detect_lang, noun_forms, normalize, nouns, person_names, place_names, proper_nouns

# A hiragana part marks a phrase or a verb's noun (向き不向き, 選び), not a term: unnamed_thing and passing_mention.
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_KANA = re.compile(r"[\u3041-\u30ff]")  # a Japanese question: Latin capitals there are names, not a sentence's start
_JAPANESE = re.compile(r"[\u3041-\u30ff\u4e00-\u9fff]")

@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str
    dense: float
    known_share: float


def known_share(question: str, vocab: dict, ignore: frozenset = frozenset()) -> float:
    """Share of the question's content nouns that occur anywhere in the kb (1.0 when it names none)."""
    tokens = [t for t in nouns(question) if t not in ignore]
    if not tokens:
        return 1.0
    return sum(1 for t in tokens if t in vocab) / len(tokens)


def check(question: str, top_dense: float, evidence: list[str], vocab: dict, settings, asked: str = "") -> GateResult:
    """`question` is the standalone query; `asked` the user's own words. Both must use words the kb knows, so a
    follow-up rewrite cannot smuggle 「今日の天気は？」 past the gate by prefixing an earlier topic."""
    share = known_share(question, vocab)
    if asked and known_share(asked, vocab, POINTER_NOUNS) == 0.0:
        return GateResult(False, "none of the question's own words occur in the kb", top_dense, 0.0)
    if top_dense < settings.min_dense_score:
        return GateResult(False, f"weak dense match {top_dense:.3f}", top_dense, share)
    if share < settings.min_keyword_overlap:
        return GateResult(False, f"question words unknown to the kb ({share:.2f})", top_dense, share)
    names = [n for n in proper_nouns(asked or question) if n not in vocab]
    if names:  # トヨタの事例, "What did Toyota achieve": a named company, product or place the kb never mentions
        return GateResult(False, f"names {names[0]!r}, which the kb does not mention", top_dense, share)
    reason = asks_for_missing_type(question, " ".join(evidence)) or unknown_quantity(asked or question, evidence, vocab)
    if reason:
        return GateResult(False, reason, top_dense, share)
    return GateResult(True, "ok", top_dense, share)


def unknown_quantity(question: str, evidence: list[str], vocab) -> str | None:
    """「オフショア先の時差ってどれくらい？」: a figure asked of a word the kb never uses, and no number in the evidence.
    Both are needed: 「導入までどれくらい時間かかる？目安しりたい」 uses a word the kb lacks (目安) and is answered by
    「3〜4か月」; 「効果ってどのくらい？」 has no number to give but asks of a kb word."""
    if not pb.ASKS_QUANTITY.search(question) or re.search(r"\d", " ".join(evidence)):
        return None
    unknown = [n for n in nouns(question) if len(n) > 1 and n not in vocab]
    return f"asks for a figure of {unknown[0]!r}, which the kb does not state" if unknown else None


def asks_for_missing_type(question: str, evidence: str) -> str | None:
    """Why the evidence cannot answer what kind of thing the question asks for, or None when it can."""
    if not pb.ASKS_WHY.search(question) and (reason := _missing_amount(question, evidence)):
        return reason
    years = {m.group(0) for m in pb.YEAR.finditer(question)}
    if years and not all(y in evidence for y in years):
        return "asks about a year the kb does not cover"
    if pb.ASKS_NAMES.search(question):
        return "asks for company names or rankings the kb does not hold"
    if pb.ASKS_PERSON.search(question) and not person_names(evidence):
        return "asks who proposed or founded something; the kb names no people"
    if pb.ASKS_LAW.search(question):
        return "asks for a legal article the kb does not hold"
    if pb.ASKS_CASE_LAW.search(question) and not pb.ASKS_CASE_LAW.search(evidence):
        return "asks for court cases the kb does not hold"
    if pb.ASKS_SUBSIDY.search(question) and not pb.ASKS_SUBSIDY.search(evidence):
        return "asks about public subsidies the kb does not cover"
    if pb.ASKS_TAX.search(question) and not pb.ASKS_TAX.search(evidence):
        return "asks about tax or stamp duty the kb does not cover"
    return None


def _missing_amount(question: str, evidence: str) -> str | None:
    """An amount, share, count or length asked for that the evidence does not state."""
    if pb.ASKS_MONEY.search(question) and not pb.MONEY.search(evidence):
        return "asks for a price, wage or market size the kb does not state"
    if pb.ASKS_AVERAGE.search(question) and not re.search(r"\d", evidence):
        return "asks for an average or typical figure the kb does not state"
    if pb.ASKS_PERCENT.search(question) and not re.search(r"\d\s*(%|％|割)", evidence):
        return "asks for a percentage the kb does not state"
    if pb.ASKS_COUNT.search(question) and not re.search(r"\d+\s*(人|社|件|名|回|people|compan|firm|times)", evidence):
        return "asks for a count the kb does not state"
    if pb.ASKS_DEADLINE.search(question) and not re.search(r"\d+\s*(月|日)|\d{1,2}/\d{1,2}", evidence):
        return "asks for a deadline the kb does not state"
    if pb.ASKS_YEARS.search(question) and not re.search(r"\d+\s*(年|years?)", evidence):
        return "asks for a number of years the kb does not state"
    if pb.ASKS_TERM.search(question) and not pb.TERM.search(evidence):
        return "asks for a contract term the kb does not state"
    return None


def foreign_subject(question: str, vocab, kb_texts, loanwords=frozenset()) -> str | None:
    """Why no kb sentence can answer the question whatever is retrieved: it compares places the kb never names
    (「ベトナムとフィリピン、どっちが安い？」), asks about a statute no kb text names (「派遣法の規制は？」), or asks for
    a case or price of a firm whose katakana name the kb never uses. A name the kb never mentions (パソナ in
    「トランスコスモスとパソナ、どっちがいい？」) is refused here, before the comparison tables and vetted answers,
    which would otherwise answer a comparison of their own terms."""
    names = [n for n in proper_nouns(question) if n not in vocab]
    if names:
        return f"names {names[0]!r}, which the kb does not mention"
    if pb.ASKS_TEMPLATE.search(question) or pb.ASKS_WRITING.search(question):
        return "asks for a template or a document to be written; the kb explains, it holds no forms"
    if pb.OWN_COMPANY.search(question):
        return "asks for a fact of the asker's own company, which a general kb does not hold"
    if pb.ASKS_CONTACT.search(question):
        return "asks for contact details; the kb names no vendors"
    if pb.ASKS_SURVEY.search(question):
        return "asks for survey results or statistics the kb does not cite"
    places = [p for p in place_names(question) if p not in vocab]
    if places and pb.ASKS_OF_PLACE.search(question):
        return f"asks about {places[0]!r}, which the kb does not describe"
    if name := unknown_acronym(question, vocab, kb_texts):
        return f"names {name!r}, which the kb does not mention"
    if pb.PERSONAL.search(question) and not nouns(" ".join(
            p for p in re.split(r"(?<=[。！？!?…])", question) if not pb.PERSONAL.search(p))):
        # only when nothing but the feeling names a subject: 「締めがしんどいです。どんな業務を出せますか」 asks one
        return "asks for personal advice, which the kb does not give"
    if ask := pb.ASKS_OF_A_FIRM.search(question):
        before = question[: ask.start()]
        for word in pb.KATAKANA_RUN.findall(before) + pb.ACRONYM.findall(before):
            if word not in loanwords and not any(word in t for t in kb_texts()):
                return f"names {word!r}, which the kb does not mention"
    if (m := pb.HANDLES_EVENT.search(question)) and not any(m.group(1) in t for t in kb_texts()):
        return f"asks how to handle {m.group(1)!r}, which the kb does not cover"
    if thing := unnamed_thing(question, vocab):
        return f"asks about {thing!r}, which the kb does not mention"
    if ((m := pb.RECOMMENDS.search(question)) and any(n not in vocab for n in nouns(question))
            and not any(m.group(1) in t for t in kb_texts())):
        return f"asks for a recommendation of {m.group(1)!r}, which the kb does not cover"
    if thing := passing_mention(question, kb_texts):
        return f"asks for the steps or contents of {thing!r}, which the kb mentions only in passing"
    if (m := pb.BROADCAST.search(question)) and not any(m.group(0) in t for t in kb_texts()):
        return "asks about broadcasting (the other BPO, 放送倫理・番組向上機構), which the kb does not cover"
    if len(places) >= 2 and pb.COMPARES.search(question):
        return f"compares places the kb does not describe ({', '.join(places)})"
    for m in pb.STATUTE.finditer(question):
        name = m.group(0)
        if not name.endswith(pb.NOT_STATUTE) and not any(name[-3:] in t for t in kb_texts()):
            return f"asks about a law ({name}) the kb does not cover"
    return None


def unknown_acronym(question: str, vocab, kb_texts) -> str | None:
    """An all-capitals name written against Japanese text (「GDPRに対応した」「ISO27001を取っている」) that no kb text
    uses: the kb cannot say what it requires, whatever sentences on contracts or security retrieval brings."""
    if not _KANA.search(question):
        return None
    for m in list(pb.ACRONYM.finditer(question)) + list(pb.CAMEL.finditer(question)):
        name = m.group(0)
        before, after = question[m.start() - 1: m.start()], question[m.end(): m.end() + 1]
        if (len(name) < 3 or name.upper() in pb.ROLE_ACRONYMS
                or not (_JAPANESE.match(before or " ") or _JAPANESE.match(after or " "))):
            continue
        if name.lower() not in vocab and not any(name.lower() in t.lower() for t in kb_texts()):
            return name
    return None


def unnamed_thing(question: str, vocab) -> str | None:
    """The thing a detail question asks about when the kb never names it: 「Pマークを取得する費用と期間」 (マーク),
    「偽装請負にならない判断基準」 (偽装), 「ISMSの認証を取る手順」. It is a compound with a part no kb text uses, or an
    acronym the kb lacks; an unknown word standing alone (人減らし, 丸投げ) is an everyday word for a kb subject."""
    if not pb.ASKS_DETAIL.search(question):
        return None
    for acronym in pb.ACRONYM.findall(question):
        if acronym.lower() not in vocab and len(acronym) >= 3:
            return acronym
    text = normalize(question).lower()
    forms = noun_forms(question)
    for i, (lemma, surface) in enumerate(forms):
        # a term, not a phrase or a suffix: 向き不向き and 結局ただ carry hiragana, 策 (削減策) is one kanji; Latin parts are the acronym rule's
        if lemma in vocab or len(surface) < 2 or surface.isascii() or _HIRAGANA.search(surface):
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(forms):
                pair = surface + forms[j][1] if j > i else forms[j][1] + surface
                # the detail must be asked of the thing, not be part of it (コストカット is no question of cost)
                if pair in text and pb.ASKS_DETAIL.search(text.replace(pair, "")):
                    return pair
    return None


def passing_mention(question: str, kb_texts) -> str | None:
    """The thing a procedure question asks about when the kb mentions it once (one sentence cannot hold the steps
    of 「ゼロトラストを社内に導入する手順」), or a contents question about a thing mentioned at most twice. Counted
    over the headings and texts in the question's language, so a section's own subject is never "in passing"."""
    if pb.ASKS_PROCEDURE.search(question):
        most = 1
    elif pb.ASKS_CONTENTS.search(question):
        most = 2
    else:
        return None
    lang = detect_lang(question)
    texts = [t.lower() for t in kb_texts() if detect_lang(t) == lang]
    for _lemma, surface in noun_forms(question):
        thing = surface.lower()
        # a term, not a deverbal word (選び of 委託先選び carries hiragana) or a pointer
        if len(thing) < 2 or thing in POINTER_NOUNS or pb.ASKS_PROCEDURE.search(thing) or _HIRAGANA.search(thing):
            continue
        if 1 <= sum(t.count(thing) for t in texts) <= most:
            return surface
    return None


def scope(turn, kb, settings):
    """Stage, before the curated answers and comparison tables (which quote no retrieved evidence to check): a
    question about what the kb cannot hold is refused, with the reason."""
    from .refusal import refuse

    if not turn.asked:
        return None
    reason = foreign_subject(turn.asked, kb.vocab, lambda: (" ".join(parts) for parts in kb.sections.values()), kb.loanwords)
    return refuse(turn, kb, reason) if reason else None

