"""The core's language words in one place: intent cues of questions and the words of sentences that answer them.

Why hand-written: no Japanese intent classifier ships with a PyPI model here, and the cues are few and stable.
Each intent pairs question cues (what the user asks) with answer cues (words a kb sentence that answers that
kind of question tends to hold); the composer prefers such sentences. Patterns are matched on NFKC text.
"""

from __future__ import annotations

import re

# 違い/違う, but not 間違い/間違いない (a mistake, "surely"): shared by the difference intent and the comparison cues.
_DIFFER = r"(?<!間)違い|(?<!間)違う"

INTENTS: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "definition": (
        re.compile(r"(?<![あれ])とは|って何|ってなに|ってなん|何のこと|なんのこと|(何|なに)をする(こと|もの)|どういう(こと|もの)|どんなもの|の意味|意味は|定義|正式名称|略|what\s+is|what's|what\s+are|"
                   r"\bmean|defin|stand\s+for", re.I),
        re.compile(r"とは|の略|経営手法|形態|指す|手法|契約です|ことです|\bis\s+(an?|the)\b|refers?\s+to|means?", re.I),
    ),
    "reason": (
        re.compile(r"なぜ|なんで(?!しょ|す)|何で(?!す|しょ)|理由|どうして|背景|why|reason", re.I),
        re.compile(r"ため|から|背景|理由|によって|につなが|because|since|so\s+that|reason|lead", re.I),
    ),
    "howto": (
        re.compile(r"どうやって|どうすれば|どうしたら|方法|手順|やり方|進め方|ポイント|コツ|失敗しない|しないには|"
                   r"するには|how\s+(do|to|can|should)|steps?|tips?|avoid", re.I),
        re.compile(r"必要|重要|確認|明確|決め|整理|取り決め|見極め|should|need|important|check|clarif|agree", re.I),
    ),
    "risk": (
        re.compile(r"リスク|デメリット|注意|危険|問題|落とし穴|失敗|懸念|不安|気をつけ|気を付け|risk|downside|"
                   r"drawback|disadvantage|pitfall|careful|danger|concern", re.I),
        re.compile(r"リスク|恐れ|おそれ|可能性|注意|負う|漏洩|漏えい|低下|失われ|ブラックボックス|risk|may|could|"
                   r"leak|lose|loss|liab", re.I),
    ),
    "choice": (
        re.compile(r"どちら|どっち|どれ|選ぶ|選び|向いて|べき|which|choose|better|should\s+we", re.I),
        re.compile(r"向いて|適して|場合|選ぶ|suited|suitable|when|if\b", re.I),
    ),
    "difference": (
        re.compile(_DIFFER + r"|ちがい|差|異なる|比較|vs\.?|versus|differ|compare", re.I),
        re.compile(_DIFFER + r"|異なり|一方|に対し|対して|比べ|whereas|while|unlike|differ|by\s+contrast", re.I),
    ),
    "example": (  # 「経理で例えると」: a worked example, which a comparison table does not give
        re.compile(r"例えると|たとえると|例えば|たとえば|具体例|例を挙げ|例で|例に(する|すると|とる|とると|とって|して)|for\s+example|e\.g\.|an\s+example|"
                   r"examples?\s+of|for\s+instance", re.I),
        re.compile(r"例|ケース|たとえば|example|such\s+as|e\.g\.|case", re.I),
    ),
    "premise": (  # 「結局コスト削減でしょ？」「任せっきりで大丈夫ですよね？」: a belief to confirm or correct
        re.compile(r"でしょ[？?]|でしょ$|よね[？?]|よね$|のでは[？?]|のでは$|じゃないの|んじゃない|にすぎない|所詮|しょせん|"
                   r"大丈夫|楽できる|理解で(OK|ok|いい|合って|あって)|という理解|ってことで(いい|OK)|任せっきり|任せきり|任せにして|てよいのでしょうか|ていいの[？?]|isn't\s+it|"
                   r"aren't\s+they|\bjust\s+(a|an|about)\b|\bonly\s+about\b|\bbasically\b|"
                   r"is\s+it\s+(ok|fine|safe)\s+to|\b(can|could)\s+(i|we)\s+just\b|forget\s+about\s+it|"
                   r"\bjust\s+(hand|leave|outsource|farm)", re.I),
        # the kb's correcting sentences: 「…だけの手段ではなく」「任せきりにせず」「…だけにとどまりません」
        re.compile(r"だけでなく|だけの|だけではあり|せず|にとどまら|限らない|限りません|必ずしも|"
                   r"not\s+(only|just|merely)|rather\s+than|without|beyond|not\s+leav|do\s+not\s+leave|"
                   r"keep\s+(managing|reviewing)", re.I),
    ),
    "benefit": (
        re.compile(r"メリット|利点|効果|良いこと|いいこと|お得|得する|得になる|得られる|うれしい|benefit|advantage|merit|upside|gain", re.I),
        re.compile(r"できます|向上|削減|つなが|高め|効果|benefit|improv|reduc|raise|lower", re.I),
    ),
}

# Thanks, greetings and acknowledgements that ask nothing (「ありがとう、助かりました！」「了解です」 "thanks!").
_SMALL_TALK_WORD = (
    r"(ありがと(う|うございます|うございました)?|どうも(ありがとう)?|助かり(ました|ます)|了解(です|しました)?|"
    r"(わか|分か|解)りました|なるほど(です)?|こんにちは|こんばんは|おはよう(ございます)?|よろしく(お願いします)?|"
    r"お疲れ様(です)?|おつかれさま(です)?|すごい|いいね|ok|okay|thanks?|thank\s+you(\s+(very|so)\s+much)?|"
    r"great|got\s+it|hello|hi|hey|good\s+(morning|afternoon|evening)|cheers|nice)")
_SMALL_TALK = re.compile(rf"{_SMALL_TALK_WORD}(\s*{_SMALL_TALK_WORD})*", re.I)


def is_small_talk(text: str) -> bool:
    """Every piece between punctuation is a word of thanks or greeting, and nothing else was said."""
    pieces = [p.strip() for p in re.split(r"[、。,.!！?？~〜…]+", text) if p.strip()]
    return bool(pieces) and all(_SMALL_TALK.fullmatch(p) for p in pieces)


# A belief that belittles (「しょせんコストカットでしょ」 "just a way to cut headcount"): the kb corrects these.
DISMISSIVE = re.compile(r"しょせん|所詮|にすぎない|に過ぎない|だけでしょ|だけじゃ(ない|ん)の|\bjust\s+(a|an|about)\b|"
                        r"\bonly\s+about\b|\bbasically\s+just\b|\bnothing\s+more\s+than\b", re.I)

# A hint after the question (「BPOって何？外部委託のやつ」): what the user thinks the thing is, not a second topic. Routed
# on, it wins over the question (外部委託 pulls the BPO-vs-outsourcing section over the definition).
_HINT = re.compile(r"[^？?。!！]{1,24}?(の|って|みたいな|っぽい|る|た|い)(やつ|奴|もの|こと|の)(だっけ|ですよね|だよね|かな|よね)?[？?。!！…]*")


def drop_hint(question: str) -> str:
    """The question without a trailing hint sentence, when what is left still asks something."""
    parts = [p for p in re.split(r"(?<=[？?。!！])\s*", question.strip()) if p]
    if len(parts) >= 2 and _HINT.fullmatch(parts[-1]) and not intents(parts[-1]) and intents("".join(parts[:-1])):
        return "".join(parts[:-1])
    return question


# A compound question asks two things at once: a joining word plus two intents or two subjects.
COMPOUND = re.compile(r"と、|、それと|それから|あと、|あとは|および|及び|ならびに|も教えて|もあわせて|もまとめて|まとめて|"
                      r"両方|それぞれ|\band\s+(also|what|how|why)\b|as\s+well\s+as|both", re.I)

# A comparison of concepts (compare.is_comparison): any comparing word with two terms; with one term only a word of
# difference (「ITOとの違いは？」), since a bare 比べる with one term (「今のコストと比べて」) compares no concepts.
COMPARISON_CUE = re.compile(_DIFFER + r"|ちがい|ちがう|比較|比べ|異な|差異|\bvs\.?\b|versus|differ|compare|comparison|"
                            r"contrast", re.I)
DIFFERENCE_CUE = re.compile(_DIFFER + r"|ちがい|ちがう|異な|差異|\bvs\.?\b|versus|differ", re.I)

# Pointing into the last answer: 「その中で」「そのうち」 narrow to what was just said.
NARROW = re.compile(r"その中で|そのうち|その中の|中でも|さっきの中で|among\s+them|of\s+those|of\s+these", re.I)

# English has no tagger here: the places an English question about Japanese BPO tends to name (「in Japan」 is context,
# not a company), and the offshore countries a comparison names.
PLACES_EN = frozenset("japan tokyo osaka asia vietnam philippines india china thailand malaysia indonesia korea "
                      "taiwan singapore bangladesh".split())
HOME_EN = frozenset("japan tokyo osaka".split())  # the kb's own setting: context, not a subject it lacks

LEAD = {"ja": "ナレッジベースによると:", "en": "According to our knowledge base:"}
SOURCES = {"ja": "出典:", "en": "Sources:"}
FALLBACK_NOTICE = "No English source covers this; the answer quotes our Japanese guidance."


def intents(question: str) -> tuple[str, ...]:
    """Every intent whose question cue the text holds, in the phrasebook's order."""
    return tuple(name for name, (asks, _) in INTENTS.items() if asks.search(question))


def answers_intent(sentence: str, wanted: tuple[str, ...]) -> bool:
    return any(INTENTS[name][1].search(sentence) for name in wanted)


def is_compound(question: str) -> bool:
    return bool(COMPOUND.search(question))


# Where a compound question divides, strongest joint first: two sentences, 「、それと」, 及び, then a joining と that is
# not とは/として/という/とか/と思う (「BPOとは何？」 is one subject), then English "and".
_PART_SPLITS = (
    re.compile(r"[？?。！!]\s*(?=\S)"),
    re.compile(r"、\s*(?:それと|それから|あと|あとは|それに|加えて)、?"),
    re.compile(r"および|及び|ならびに|並びに"),
    re.compile(r"(?<=[^\sとこ])と(?![はしいい言思かもなす、])"),
    re.compile(r"\s+and\s+(?:also\s+)?|\s+as\s+well\s+as\s+", re.I),
)


def compound_parts(question: str) -> tuple[str, ...]:
    """The two halves of a compound question (「ベンダー選定のポイント」「契約形態の違いを両方教えて」), each long
    enough to route on its own, or () when no joint divides it."""
    for joint in _PART_SPLITS:
        parts = tuple(p.strip(" 、,") for p in joint.split(question.strip(), maxsplit=1))
        if len(parts) == 2 and all(len(p) >= 2 for p in parts):
            return parts
    return ()
