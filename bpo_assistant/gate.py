"""Answerability gate: answer only when the evidence is strong, otherwise refuse with the fixed sentinel.

Three checks, each cheap and explainable (thresholds in Settings, calibrated on evals/suites/dev.jsonl):
1. dense similarity of the best chunk (e5 cosines are compressed: unrelated text still scores ~0.75);
2. the question's content words must be known to the kb: a question about 時給 or the weather uses words
   our documents never contain;
3. the answer type: a question asking for an amount, a company name or a legal article needs evidence of
   that type, and the kb holds no prices, market sizes, vendor names or statute numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import noun_forms, normalize, nouns, person_names, place_names, proper_nouns

# Money and size: the kb states no price, fee level, wage or market size, so evidence must show a currency.
# 「単純な金額比較でいい？」 asks how to judge, not for an amount.
_ASKS_MONEY = re.compile(
    r"いくら|何円|何万円|何億|何兆|金額(?!比較|の比較|だけ|のみ)|相場|単価|時給|月給|年収|給料|給与水準|賃金|市場規模|規模は|上限額|株価|銘柄|"
    r"how much|market size|how big|salary|salaries|wage|hourly rate|price of|cost per|stock price|share price|"
    r"(usual|typical|average|standard|normal)\s+(\w+\s+)?(fee|price|cost|rate)s?\b",
    re.I,
)
_MONEY = re.compile(r"\d[\d,.]*\s*(円|万|億|兆|ドル|%|％)|[$¥€]\s*\d")
_ASKS_PERCENT = re.compile(r"何\s*%|何パーセント|何割|割合|成長率|伸び率|CAGR|シェアは|シェアを|percent|percentage|what share|"
                           r"growth rate|market share", re.I)
# Public subsidies (補助金, 助成金): the kb names none.
_ASKS_SUBSIDY = re.compile(r"補助金|助成金|給付金|subsid|\bgrants?\b", re.I)
# What one named firm did or charges (「トランスコスモスの導入事例」): asked of a katakana word the kb never uses, that
# word is a company name MeCab does not know (it splits トランスコスモス into two common nouns).
# Only a long word before the ask counts: short loanwords (パターン, プラン) are ordinary words the kb happens not to use.
_ASKS_OF_A_FIRM = re.compile(r"事例|実績|料金|評判|口コミ|サービス内容|株価|年収|case stud|reviews?", re.I)
_KATAKANA_RUN = re.compile(r"[\u30a1-\u30faー]{4,}")
# Capital-letter firm names (NTT, KDDI, IBM): the kb's own acronyms (BPO, RPA, SLA) are found in its texts.
_ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z]{2,}[A-Za-z0-9]*(?![A-Za-z])")
# The other BPO: 放送倫理・番組向上機構 (Broadcasting Ethics & Program Improvement Organization) judges programmes.
_BROADCAST = re.compile(r"放送|番組|テレビ|ラジオ|視聴者|broadcast|television|\bTV\b|programme", re.I)
_ASKS_COUNT = re.compile(r"何人|何社|何件|何名|how many (people|staff|employees|companies|firms|vendors|workers)", re.I)
_ASKS_DEADLINE = re.compile(r"いつまで|締め切り|締切|期限|deadline|due date|by when", re.I)
# "How long does a BPO contract last" asks for years; "how long does it take to get … up and running" asks for the
# lead time the kb states (3–4 months), so only "how long <it> runs/lasts" counts.
_ASKS_YEARS = re.compile(r"何年|how many years|how long (does|do|will|would|can|should) [\w\s-]{1,30}? (run|last)s?\b",
                         re.I)
# A contract's length (最低契約期間): the kb states no contract terms; evidence must show a number of months or years.
_ASKS_TERM = re.compile(r"契約期間|最低契約|契約年数|契約の期間|contract (term|period|length|duration)|minimum (term|period)",
                        re.I)
# …and a length said of the contract itself: 「運用開始まで3〜4ヶ月」 is a lead time, not a term.
_TERM = re.compile(r"契約[^。.]{0,20}\d+\s*(年|ヶ月|か月|カ月|ヵ月)|\d+[-\s]*(year|month)s?[^.]{0,20}(contract|term)", re.I)
_YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")
_ASKS_NAMES = re.compile(
    r"おすすめの(会社|企業|ベンダー|業者|ツール|製品|ソフト)|"
    r"(ツール|製品|ソフト)を\d+つ|(会社|企業|ベンダー|業者)(名|を教えて|を\d+社)|ランキング|どこの会社|どこがいい|"
    r"大手|最大手|\d+社|which compan|best (bpo )?(compan|vendor|provider)|top (\d+|three|five|ten)\b|ranking|recommend (a|some) (vendor|compan)|"
    r"compan(y|ies) names?|names? of (the )?(compan|vendor|provider)|which (bpo )?(vendor|compan|provider)\w* is (the )?best|"
    r"(一番|いちばん|最も|もっとも)(大き|有名|人気)[^。？?]*(会社|企業|ベンダー|業者)|(会社|企業|ベンダー|業者)(って|は)どこ(?!まで)|"
    r"どこが(一番|いちばん|おすすめ)|(どの|どこの|どっちの|どちらの)国|which countr|"
    r"largest|biggest|most popular|leading (bpo )?(compan|vendor|provider)",
    re.I,
)
# Tax and stamp duty: the kb says nothing on how BPO fees are taxed or stamped.
_ASKS_TAX = re.compile(r"税|印紙|仕入税額|インボイス|\btax|\bvat\b|stamp duty", re.I)
_ASKS_LAW = re.compile(r"何\s*条|第\s*\d+\s*条|条文|民法|法律の条|article \d+|which article|civil code", re.I)
# A statute by name (派遣法, 下請法, 個人情報保護法): the kb names none, so evidence must name the same one. Words that
# merely end in 法 (方法, 手法) and 法人/法令/法律/法務 are not statutes; 「法律で必ず請負に…」 is a premise to answer.
_STATUTE = re.compile(r"[一-龥]{1,10}法(?![人令律務的則案])")
_NOT_STATUTE = ("方法", "手法", "用法", "文法", "技法", "製法", "工法", "作法", "療法", "論法", "寸法", "話法", "兵法",
                "魔法", "加法", "減法", "乗法", "除法", "解法", "戦法", "仕法", "筆法", "算法")
# A detail (cost, time, procedure, criteria) asked of something: the detail words are kb words (費用, 期間, 手順), so
# the share of known nouns passes even when the thing itself is one the kb never names (see unnamed_thing).
# 方法 and やり方 are left out: 「コストカットのための方法にすぎない？」 is a belief, not a request for steps.
_ASKS_DETAIL = re.compile(r"費用|コスト|料金|期間|手順|手続き|取得|申請|基準|条件|要件|"
                          r"\bcosts?\b|how long|\bsteps?\b|procedure|criteria|requirements?|how (do|can) (we|i) (get|obtain)",
                          re.I)
# Who coined, proposed or founded something: the kb names no people, so evidence must show a personal name.
# 「社内には誰を置く？」 asks for a role, which the kb answers: only an origin verb or a word for a person counts.
_ASKS_PERSON = re.compile(
    r"誰が?(提唱|考案|発明|作っ|作り|始め|広め|名付け|生み出|言い出|最初に)|(提唱|考案|発明|発案|創始|命名)(者|した(人|学者|人物))|"
    r"生みの親|(学者|人物|研究者)(は|って|の名前|を教えて)|"
    r"who\s+(coined|invented|proposed|came\s+up\s+with|first\s+(used|proposed|described)|introduced|founded)|"
    r"which\s+(scholar|professor|author|researcher)", re.I)
# Steps asked of a thing: a thing the kb mentions once (ゼロトラスト, in a list of security measures) has no
# procedure there, whatever sentence retrieval brings.
_ASKS_PROCEDURE = re.compile(r"手順|やり方|進め方|導入方法|設定方法|構築方法|作り方|ステップ|\bsteps?\b|"
                             r"how\s+to\s+(implement|set\s+up|roll\s+out|deploy|introduce|build)", re.I)
# A recommendation of a thing the kb never mentions (週末の過ごし方, ホテル), in a question with a word the kb lacks
# (週末): 「初めてのBPOでおすすめの進め方は？」 uses only kb words and asks for the kb's own advice.
_RECOMMENDS = re.compile(r"(?:おすすめ|オススメ|お勧め|お薦め)(?:の|な)([一-龥ぁ-んァ-ヶー]{2,}?)(?=は|を|が|って|ある|ない|教え|[、。？?！!]|$)")
_COMPARES = re.compile(r"どっち|どちら|比べ|比較|違い|which|compare|versus|\bvs\b", re.I)


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str
    dense: float
    known_share: float


# Nouns that only point at something said before (「その人」「3つ目のやつ」「その辺の話」): they carry no subject,
# so a follow-up made of them is judged by what it points at, not refused for using words the kb lacks.
POINTER_NOUNS = frozenset("人 方 奴 物 事 所 辺 話 件 点 部分 内容 詳細 具体 具体例 例 目 個 つ 役割 役目 中身 意味 前者 後者".split())


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
    reason = asks_for_missing_type(question, " ".join(evidence))
    if reason:
        return GateResult(False, reason, top_dense, share)
    return GateResult(True, "ok", top_dense, share)


def asks_for_missing_type(question: str, evidence: str) -> str | None:
    """Why the evidence cannot answer what kind of thing the question asks for, or None when it can."""
    if _ASKS_MONEY.search(question) and not _MONEY.search(evidence):
        return "asks for a price, wage or market size the kb does not state"
    if _ASKS_PERCENT.search(question) and not re.search(r"\d\s*(%|％|割)", evidence):
        return "asks for a percentage the kb does not state"
    if _ASKS_COUNT.search(question) and not re.search(r"\d+\s*(人|社|件|名|people|compan|firm)", evidence):
        return "asks for a count the kb does not state"
    if _ASKS_DEADLINE.search(question) and not re.search(r"\d+\s*(月|日)|\d{1,2}/\d{1,2}", evidence):
        return "asks for a deadline the kb does not state"
    if _ASKS_YEARS.search(question) and not re.search(r"\d+\s*(年|years?)", evidence):
        return "asks for a number of years the kb does not state"
    if _ASKS_TERM.search(question) and not _TERM.search(evidence):
        return "asks for a contract term the kb does not state"
    years = {m.group(0) for m in _YEAR.finditer(question)}
    if years and not all(y in evidence for y in years):
        return "asks about a year the kb does not cover"
    if _ASKS_NAMES.search(question):
        return "asks for company names or rankings the kb does not hold"
    if _ASKS_PERSON.search(question) and not person_names(evidence):
        return "asks who proposed or founded something; the kb names no people"
    if _ASKS_LAW.search(question):
        return "asks for a legal article the kb does not hold"
    if _ASKS_SUBSIDY.search(question) and not _ASKS_SUBSIDY.search(evidence):
        return "asks about public subsidies the kb does not cover"
    if _ASKS_TAX.search(question) and not _ASKS_TAX.search(evidence):
        return "asks about tax or stamp duty the kb does not cover"
    return None


def foreign_subject(question: str, vocab, kb_texts, loanwords=frozenset()) -> str | None:
    """Why no kb sentence can answer the question whatever is retrieved: it compares places the kb never names
    (「ベトナムとフィリピン、どっちが安い？」), asks about a statute no kb text names (「派遣法の規制は？」), or asks for
    a case or price of a firm whose katakana name the kb never uses."""
    if ask := _ASKS_OF_A_FIRM.search(question):
        before = question[: ask.start()]
        for word in _KATAKANA_RUN.findall(before) + _ACRONYM.findall(before):
            if word not in loanwords and not any(word in t for t in kb_texts()):
                return f"names {word!r}, which the kb does not mention"
    if thing := unnamed_thing(question, vocab):
        return f"asks about {thing!r}, which the kb does not mention"
    if ((m := _RECOMMENDS.search(question)) and any(n not in vocab for n in nouns(question))
            and not any(m.group(1) in t for t in kb_texts())):
        return f"asks for a recommendation of {m.group(1)!r}, which the kb does not cover"
    if thing := passing_mention(question, kb_texts):
        return f"asks for the steps of {thing!r}, which the kb mentions only in passing"
    if (m := _BROADCAST.search(question)) and not any(m.group(0) in t for t in kb_texts()):
        return "asks about broadcasting (the other BPO, 放送倫理・番組向上機構), which the kb does not cover"
    places = [p for p in place_names(question) if p not in vocab]
    if len(places) >= 2 and _COMPARES.search(question):
        return f"compares places the kb does not describe ({', '.join(places)})"
    for m in _STATUTE.finditer(question):
        name = m.group(0)
        if not name.endswith(_NOT_STATUTE) and not any(name[-3:] in t for t in kb_texts()):
            return f"asks about a law ({name}) the kb does not cover"
    return None


def unnamed_thing(question: str, vocab) -> str | None:
    """The thing a detail question asks about when the kb never names it: 「Pマークを取得する費用と期間」 (マーク),
    「偽装請負にならない判断基準」 (偽装), 「ISMSの認証を取る手順」. It is a compound with a part no kb text uses, or an
    acronym the kb lacks; an unknown word standing alone (人減らし, 丸投げ) is an everyday word for a kb subject."""
    if not _ASKS_DETAIL.search(question):
        return None
    for acronym in _ACRONYM.findall(question):
        if acronym.lower() not in vocab and len(acronym) >= 3:
            return acronym
    text = normalize(question).lower()
    forms = noun_forms(question)
    for i, (lemma, surface) in enumerate(forms):
        # a term, not a phrase or a suffix: 向き不向き and 結局ただ carry hiragana, 策 (削減策) is one kanji; Latin parts are the acronym rule's
        if lemma in vocab or len(surface) < 2 or surface.isascii() or re.search(r"[\u3041-\u309f]", surface):
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(forms):
                pair = surface + forms[j][1] if j > i else forms[j][1] + surface
                # the detail must be asked of the thing, not be part of it (コストカット is no question of cost)
                if pair in text and _ASKS_DETAIL.search(text.replace(pair, "")):
                    return pair
    return None


def passing_mention(question: str, kb_texts) -> str | None:
    """The thing a procedure question asks about when the kb mentions it exactly once: one sentence cannot hold the
    steps of 「ゼロトラストを社内に導入する手順」. Counted over headings and texts, so a section's own subject is
    never "in passing"."""
    if not _ASKS_PROCEDURE.search(question):
        return None
    texts = [t.lower() for t in kb_texts()]
    for _lemma, surface in noun_forms(question):
        thing = surface.lower()
        # a term, not a deverbal word (選び of 委託先選び carries hiragana) or a pointer
        if len(thing) < 2 or thing in POINTER_NOUNS or _ASKS_PROCEDURE.search(thing) or re.search(r"[\u3041-\u309f]", thing):
            continue
        if sum(t.count(thing) for t in texts) == 1:
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

