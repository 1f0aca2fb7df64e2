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
                   r"大丈夫|楽できる|理解で(OK|ok|いい|合って|あって)|という理解|ってことで(いい|OK)|ってこと([？?]|$|ですか|でしょうか|だよね)|任せっきり|任せきり|任せにして|てよいのでしょうか|ていいの[？?]|isn't\s+it|"
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
DISMISSIVE = re.compile(r"しょせん|所詮|にすぎない|に過ぎない|だけでしょ|だけじゃ(ない|ん)の|単なる|ただの|\bjust\s+(a|an|about)\b|"
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


# ---- What the kb cannot answer (gate.py): the kinds of thing a question asks for, and the evidence that answers them.
# The kb states no prices, market sizes, vendor names, statute numbers, people or court cases; gate.py pairs each ask
# with what its evidence must show.
# Money and size: the kb states no price, fee level, wage or market size, so evidence must show a currency.
# 「単純な金額比較でいい？」 asks how to judge, not for an amount.
ASKS_MONEY = re.compile(
    r"いくら|何円|何万円|何億|何兆|金額(?!比較|の比較|だけ|のみ)|相場|単価|時給|月給|年収|給料|給与水準|賃金|(市場|業界)の?規模|規模は|上限額|株価|銘柄|"
    r"how much|market size|how big|salary|salaries|wage|hourly rate|price of|cost per|stock price|share price|"
    r"(usual|typical|average|standard|normal)\s+(\w+\s+)?(fee|price|cost|rate)s?\b",
    re.I,
)
MONEY = re.compile(r"\d[\d,.]*\s*(円|万|億|兆|ドル|%|％)|[$¥€]\s*\d")
# An average or a typical figure (「平均でどれくらい？」「通話時間の目安は？」): evidence must show a number.
ASKS_AVERAGE = re.compile(r"平均(で|して|的な|的に|の)?[^。？?]{0,12}(どれくらい|どのくらい|どれぐらい|どのぐらい|何|いくら)|"
                          r"(時間|日数|件数|人数|期間)の目安|\bon average\b|\baverage (number|time|length)", re.I)
ASKS_PERCENT = re.compile(r"何\s*[%％]|何パーセント|何割|割合|成長率|伸び率|CAGR|シェアは|シェアを|percent|percentage|what share|"
                           r"growth rate|market share", re.I)
# Public subsidies (補助金, 助成金): the kb names none.
ASKS_SUBSIDY = re.compile(r"補助金|助成金|給付金|subsid|\bgrants?\b", re.I)
# What one named firm did or charges (「トランスコスモスの導入事例」): asked of a katakana word the kb never uses, that
# word is a company name MeCab does not know (it splits トランスコスモス into two common nouns).
# Only a long word before the ask counts: short loanwords (パターン, プラン) are ordinary words the kb happens not to use.
ASKS_OF_A_FIRM = re.compile(r"事例|実績|料金|評判|口コミ|サービス内容|株価|年収|case stud|reviews?", re.I)
KATAKANA_RUN = re.compile(r"[\u30a1-\u30faー]{4,}")
# Capital-letter firm names (NTT, KDDI, IBM): the kb's own acronyms (BPO, RPA, SLA) are found in its texts.
ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z]{2,}[A-Za-z0-9]*(?![A-Za-z])")
# The other BPO: 放送倫理・番組向上機構 (Broadcasting Ethics & Program Improvement Organization) judges programmes.
BROADCAST = re.compile(r"放送|番組|テレビ|ラジオ|視聴者|broadcast|television|\bTV\b|programme", re.I)
ASKS_COUNT = re.compile(r"何人|何社|何件|何名|(週|月|年|日)に?何回|how many times|how often|how many (people|staff|employees|companies|firms|vendors|workers)", re.I)
ASKS_DEADLINE = re.compile(r"いつまで|締め切り|締切|期限|deadline|due date|by when", re.I)
# "How long does a BPO contract last" asks for years; "how long does it take to get … up and running" asks for the
# lead time the kb states (3–4 months), so only "how long <it> runs/lasts" counts.
ASKS_YEARS = re.compile(r"何年|how many years|how long (does|do|will|would|can|should) [\w\s-]{1,30}? (run|last)s?\b",
                         re.I)
# A contract's length (最低契約期間): the kb states no contract terms; evidence must show a number of months or years.
ASKS_TERM = re.compile(r"契約期間|最低契約|契約年数|契約の期間|contract (term|period|length|duration)|minimum (term|period)",
                        re.I)
# …and a length said of the contract itself: 「運用開始まで3〜4ヶ月」 is a lead time, not a term.
TERM = re.compile(r"契約[^。.]{0,20}\d+\s*(年|ヶ月|か月|カ月|ヵ月)|\d+[-\s]*(year|month)s?[^.]{0,20}(contract|term)", re.I)
YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")
ASKS_NAMES = re.compile(
    r"おすすめの(会社|企業|ベンダー|業者|ツール|製品|ソフト)|"
    r"(ツール|製品|ソフト)を\d+つ|(製品|商品|ツール|ソフト|サービス|ブランド)名|(会社|企業|ベンダー|業者)の名前|事例を(\d+|[一二三四五]|いくつか)|"
    r"有名な[^。？?]{0,12}(会社|企業|ベンダー|業者|事例)|(売上|売り上げ|規模|シェア)[^。？?]{0,6}(大きい|多い|高い|トップ)[^。？?]{0,4}(会社|企業|ベンダー|業者)|(会社|企業|ベンダー|業者)(名|を教えて|を\d+社)|ランキング|どこの会社|どこがいい|"
    r"大手|最大手|\d+社|which compan|best (bpo )?(compan|vendor|provider)|top (\d+|three|five|ten)\b|ranking|recommend (a|some) (vendor|compan)|"
    r"compan(y|ies) names?|names? of (the )?(compan|vendor|provider)|which (bpo )?(vendor|compan|provider)\w* is (the )?best|"
    r"(一番|いちばん|最も|もっとも)(大き|有名|人気)[^。？?]*(会社|企業|ベンダー|業者)|(会社|企業|ベンダー|業者)(って|は)どこ(?!まで)|"
    r"どこが(一番|いちばん|おすすめ)|(どの|どこの|どっちの|どちらの)国|which countr|"
    r"largest|biggest|most popular|leading (bpo )?(compan|vendor|provider)",
    re.I,
)
# Court cases (判例, 裁判例): the kb explains duties, not how courts ruled on them.
ASKS_CASE_LAW = re.compile(r"判例|裁判例|判決|訴訟|裁判で|court\s+(case|ruling|decision)s?|precedents?|lawsuits?|case\s+law", re.I)
# Tax and stamp duty: the kb says nothing on how BPO fees are taxed or stamped.
ASKS_TAX = re.compile(r"税|印紙|仕入税額|インボイス|\btax|\bvat\b|stamp duty", re.I)
ASKS_LAW = re.compile(r"何\s*条|第\s*\d+\s*条|条文|民法|法律の条|article \d+|which article|civil code", re.I)
# A statute by name (派遣法, 下請法, 個人情報保護法): the kb names none, so evidence must name the same one. Words that
# merely end in 法 (方法, 手法) and 法人/法令/法律/法務 are not statutes; 「法律で必ず請負に…」 is a premise to answer.
STATUTE = re.compile(r"[一-龥]{1,10}法(?![人令律務的則案])")
NOT_STATUTE = ("方法", "手法", "用法", "文法", "技法", "製法", "工法", "作法", "療法", "論法", "寸法", "話法", "兵法",
                "魔法", "加法", "減法", "乗法", "除法", "解法", "戦法", "仕法", "筆法", "算法")
# A detail (cost, time, procedure, criteria) asked of something: the detail words are kb words (費用, 期間, 手順), so
# the share of known nouns passes even when the thing itself is one the kb never names (see unnamed_thing).
# 方法 and やり方 are left out: 「コストカットのための方法にすぎない？」 is a belief, not a request for steps.
ASKS_DETAIL = re.compile(r"費用|コスト|料金|期間|手順|手続き|取得|申請|基準|条件|要件|"
                          r"\bcosts?\b|how long|\bsteps?\b|procedure|criteria|requirements?|how (do|can) (we|i) (get|obtain)",
                          re.I)
# Who coined, proposed or founded something: the kb names no people, so evidence must show a personal name.
# 「社内には誰を置く？」 asks for a role, which the kb answers: only an origin verb or a word for a person counts.
ASKS_PERSON = re.compile(
    r"誰が?(提唱|考案|発明|作っ|作り|始め|広め|名付け|生み出|言い出|最初に)|(提唱|考案|発明|発案|創始|命名)(者|した(人|学者|人物))|"
    r"生みの親|(学者|人物|研究者)(は|って|の名前|を教えて)|(提唱|考案|発明|命名|最初に|初めて)[^。？?]{0,12}(のは|は|って)(誰|だれ)|"
    r"who\s+(coined|invented|proposed|came\s+up\s+with|first\s+(used|proposed|described)|introduced|founded)|"
    r"which\s+(scholar|professor|author|researcher)", re.I)
# Steps asked of a thing: a thing the kb mentions once (ゼロトラスト, in a list of security measures) has no
# procedure there, whatever sentence retrieval brings.
ASKS_PROCEDURE = re.compile(r"手順|やり方|進め方|導入方法|設定方法|構築方法|作り方|ステップ|\bsteps?\b|"
                             r"how\s+to\s+(implement|set\s+up|roll\s+out|deploy|introduce|build)", re.I)
# The full contents of a thing (「RFPに書くべき項目を全部リストアップして」, a template): a thing the kb mentions in a
# sentence or two is named there, not itemised.
ASKS_CONTENTS = re.compile(r"書くべき(項目|こと|内容)|記載(すべき|する)?(項目|事項)|項目を(全部|すべて|全て|一覧)|リストアップ|"
                            r"テンプレート|雛形|ひな形|記入例|記載例|書式|\btemplate|what\s+(should|must)\s+(go|be\s+included)\s+in",
                            re.I)
# A recommendation of a thing the kb never mentions (週末の過ごし方, ホテル), in a question with a word the kb lacks
# (週末): 「初めてのBPOでおすすめの進め方は？」 uses only kb words and asks for the kb's own advice.
RECOMMENDS = re.compile(r"(?:おすすめ|オススメ|お勧め|お薦め)(?:の|な)([一-龥ぁ-んァ-ヶー]{2,}?)(?=は|を|が|って|ある|ない|教え|[、。？?！!]|$)")
# The asker's own wellbeing (「担当者になってから毎日つらいです。どうしたらいい？」): personal advice, which the kb never gives.
PERSONAL = re.compile(r"(つら|辛)(い|くて|すぎ)|しんど|疲れ(て|た|る)|辞めたい|やめたい|転職|メンタル|落ち込|泣きたい|眠れな|"
                       r"気持ち(を|が|の)(切り替|整理|立て直|落ち着)|気が重|憂鬱|不安で(たまら|仕方|眠)|"
                       r"burn(ed|t)?\s*out|i('m|\s+am)\s+(so\s+)?(tired|exhausted|stressed|depressed)|quit\s+my\s+job", re.I)
# A reason asked for (「継続契約の割合を見るのはなんのため？」): the kb gives reasons, so a number word in the question
# (割合, 規模) names the topic, not the kind of answer.
ASKS_WHY = re.compile(r"なんのため|何のため|なぜ|なんで(?![すし])|どうして|\bwhy\b|what for", re.I)
# How to handle an event (「委託先が倒産したときの対応手順」): the kb covers the events it names (情報漏洩, トラブル);
# for any other the retrieved steps would be about something else.
HANDLES_EVENT = re.compile(r"([一-龥ァ-ヶー]{2,})(?:し|さ|になっ|が起き|が起こっ|が発生し|に遭っ)(?:た|れた)?(?:とき|時|場合|際)"
                           r"(?:の|に|は)?(?:対応|対処|手順|対策|どう)")
# A template or a document written to order (「契約書のひな形をください」「提案資料を作って」): the kb explains, it holds
# no forms and this assistant composes no documents. Only a request counts: 「契約書には何を書いておくべき？」 asks what the
# kb advises, 「提案書を書いてもらう」 is the vendor's work.
ASKS_TEMPLATE = re.compile(r"テンプレート|雛形|ひな形|ひながた|記入例|記載例|書式|文例|\btemplates?\b|sample (contract|document|clause)",
                           re.I)
ASKS_WRITING = re.compile(r"(資料|スライド|メール|文書|企画書|提案書|稟議書|文面|契約書|議事録|報告書)(を|の)?[^。？?]{0,8}"
                          r"(作って|作成して|書いて|下書きして|起案して)(?=ください|下さい|くれ|ほしい|欲しい|もらえ|いただけ|[。？?！!\s]|$)|"
                          r"\b(draft|write)\s+(me\s+|us\s+)?(a|an|the|our)\s+([\w-]+\s+){0,2}(email|proposal|contract|memo|presentation)", re.I)
# A fact of the asker's own company (「うちの会社のBPO担当者は誰？」): the kb is general knowledge, it holds no staff
# list or contract register. 「自社のどこを外に出す？」「うちではどこまで任せていい？」 ask for the kb's advice.
OWN_COMPANY = re.compile(r"(うちの|うちで|当社|弊社|わが社|我が社|自社)[^。？?]{0,20}(誰|だれ|どこ(?!まで|から|を|に)|何人|いくら)|"
                         r"\bwho\s+(is|are)\s+(our|my)\b|\bwhich\s+(vendor|compan(y|ies)|provider|firm)s?\s+(do|does|did)\s+(we|our)\b",
                         re.I)
# An all-capitals name in a Japanese question (GDPR, ISO27001, ERP) that no kb text uses; job titles are no subject.
# Only one written against Japanese text (「GDPRに」) is a name: 「DROP TABLE users」 pasted before a question is noise.
ROLE_ACRONYMS = frozenset({"CEO", "CFO", "CIO", "CTO", "COO", "CISO", "CHRO", "CDO"})
# Contact details and survey figures: the kb names no vendor, so it has no contact, and cites no survey.
ASKS_CONTACT = re.compile(r"連絡先|電話番号|メールアドレス|問い合わせ先|ホームページ|\burl\b|phone number|contact (details|information)|"
                          r"email address", re.I)
ASKS_SURVEY = re.compile(r"調査(結果|の結果|データ)|アンケート(結果|の結果)|統計|白書|survey (results?|data)|statistics", re.I)
# A figure asked of a thing the kb never names (「オフショア先の時差ってどれくらい？」 — 時差): a kb noun (効果, 期間)
# asked this way gets the kb's own account of it.
ASKS_QUANTITY = re.compile(r"どれくらい|どのくらい|どれぐらい|どのぐらい|何回|何度|何時間|何日")
# Asked of a place the kb never describes (「インドのBPO企業の特徴は？」「大阪でおすすめの会社は？」); a place that only
# sets the scene (「大阪の中小企業で、メリットは？」) asks nothing of it.
ASKS_OF_PLACE = re.compile(r"特徴|事情|状況|強み|評判|おすすめ|オススメ|人気|有名|人件費|相場|市場|what is .* like|popular|known for",
                           re.I)
# A product name in camel case (ChatGPT, UiPath, SharePoint): a name the kb would have to use to answer.
CAMEL = re.compile(r"(?<![A-Za-z])[A-Z][a-z]+[A-Z][A-Za-z0-9]*(?![A-Za-z])")
COMPARES = re.compile(r"どっち|どちら|比べ|比較|違い|which|compare|versus|\bvs\b", re.I)

# Nouns that only point at something said before (「その人」「3つ目のやつ」「最後のやつ」「その辺の話」): they carry no subject,
# so a follow-up made of them is judged by what it points at, not refused for using words the kb lacks.
POINTER_NOUNS = frozenset("人 方 奴 物 事 所 辺 話 件 点 部分 内容 詳細 具体 具体例 例 目 個 つ 番 役割 役目 中身 意味 前者 後者 最初 最後 さっき"
                          .split())
