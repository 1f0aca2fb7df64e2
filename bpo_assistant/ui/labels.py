"""UI strings in Japanese and English. Labels follow the UI language switch; answers follow the question."""

from __future__ import annotations

LANGS = ("ja", "en")

LABELS: dict[str, dict[str, str]] = {
    "ja": {
        "title": "BPOナレッジアシスタント",
        "subtitle": "社内ナレッジベースだけを根拠に、出典つきで回答します(オフライン)。",
        "ui_lang": "表示言語 / Language",
        "tab_chat": "チャット",
        "tab_onboarding": "オンボーディング",
        "tab_knowledge": "ナレッジ",
        "chatbot": "アシスタント",
        "placeholder": "質問を入力してください(例: BPOとは何ですか？)",
        "suggest": "もしかして:",
        "examples": "質問の例",
        "topic_filter": "出典のトピック",
        "topic_all": "すべて",
        "fb_title": "どこが問題でしたか？(低評価の理由)",
        "fb_reason": "理由",
        "fb_comment": "コメント(任意)",
        "fb_submit": "送信",
        "fb_cancel": "閉じる",
        "fb_thanks": "フィードバックを記録しました。ありがとうございます。",
        "fb_need_reason": "理由を選んでください。",
        "onb_intro": "確認済みの回答を学習順(概要 → 比較 → メリット → 注意点 → 委託先選定 → 契約 → DX)に並べています。",
        "onb_search": "検索(質問・回答の本文)",
        "onb_comparison": "比較表: BPO・ITO・シェアードサービス・BPR",
        "onb_none": "該当する確認済み回答はありません。",
        "kb_doc": "文書",
        "kb_status": "インデックスの状態",
        "kb_refresh": "更新",
        "questions": "質問例",
        "sources": "出典",
        "verified": "確認済み",
        "stale": "出典が更新されています(要再確認)",
        "dl_button": "この回答をMarkdownで保存",
        "dl_file": "回答ファイル(Markdown)",
        "dl_none": "保存できる回答がまだありません。",
        "dl_failed": "回答ファイルを書き込めませんでした。",
        "kb_cited": "引用された節",
    },
    "en": {
        "title": "BPO knowledge assistant",
        "subtitle": "Answers only from the internal knowledge base, with sources (offline).",
        "ui_lang": "表示言語 / Language",
        "tab_chat": "Chat",
        "tab_onboarding": "Onboarding",
        "tab_knowledge": "Knowledge",
        "chatbot": "Assistant",
        "placeholder": "Type a question (e.g. What is BPO?)",
        "suggest": "Did you mean:",
        "examples": "Example questions",
        "topic_filter": "Source topic",
        "topic_all": "All",
        "fb_title": "What was wrong? (reason for the thumbs-down)",
        "fb_reason": "Reason",
        "fb_comment": "Comment (optional)",
        "fb_submit": "Send",
        "fb_cancel": "Close",
        "fb_thanks": "Feedback recorded. Thank you.",
        "fb_need_reason": "Please choose a reason.",
        "onb_intro": "Verified answers in learning order (overview → comparison → benefits → precautions → "
        "vendor selection → contracts → DX).",
        "onb_search": "Search (question and answer text)",
        "onb_comparison": "Comparison: BPO, ITO, shared services, BPR",
        "onb_none": "No verified answer matches.",
        "kb_doc": "Document",
        "kb_status": "Index status",
        "kb_refresh": "Refresh",
        "questions": "Questions",
        "sources": "Sources",
        "verified": "Verified",
        "stale": "Sources changed since review (re-check)",
        "dl_button": "Download this answer (Markdown)",
        "dl_file": "Answer file (Markdown)",
        "dl_none": "There is no answer to save yet.",
        "dl_failed": "The answer file could not be written.",
        "kb_cited": "Cited section",
    },
}

# Stable codes are stored; labels are shown.
REASONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("wrong_citation", {"ja": "引用が違う", "en": "Wrong citation"}),
    ("outdated", {"ja": "情報が古い", "en": "Outdated"}),
    ("incomplete", {"ja": "不完全", "en": "Incomplete"}),
    ("misunderstood", {"ja": "質問の誤解", "en": "Misunderstood the question"}),
    ("other", {"ja": "その他", "en": "Other"}),
)
REASON_CODES = tuple(code for code, _ in REASONS)

TOPIC_ORDER = ("overview", "comparison", "benefits", "precautions", "vendor-selection", "contracts", "dx")
TOPIC_NAMES: dict[str, dict[str, str]] = {
    "overview": {"ja": "概要", "en": "Overview"},
    "comparison": {"ja": "比較", "en": "Comparison"},
    "operations": {"ja": "対象業務", "en": "Operations"},
    "benefits": {"ja": "メリット", "en": "Benefits"},
    "precautions": {"ja": "注意点", "en": "Precautions"},
    "vendor-selection": {"ja": "委託先の選び方", "en": "Vendor selection"},
    "contracts": {"ja": "契約", "en": "Contracts"},
    "dx": {"ja": "DX", "en": "DX"},
    "checklist": {"ja": "チェックリスト", "en": "Checklist"},
}

EXAMPLES = (
    "BPOとは何ですか？",
    "BPOとITOの違いは？",
    "BPOを導入するメリットは？",
    "請負契約と準委任契約の違いは？",
    "What is BPO?",
)


def t(lang: str, key: str) -> str:
    return LABELS.get(lang, LABELS["ja"]).get(key) or LABELS["ja"][key]


def lang_of(value: str | None) -> str:
    """The UI language radio's value ('ja'/'en', or a label) as a language code."""
    return "en" if value in ("en", "English") else "ja"


def reason_choices(lang: str) -> list[tuple[str, str]]:
    return [(names.get(lang, names["ja"]), code) for code, names in REASONS]


def topic_name(topic: str, lang: str) -> str:
    names = TOPIC_NAMES.get(topic)
    return names.get(lang, names["ja"]) if names else topic


def topic_choices(topics, lang: str) -> list[tuple[str, str]]:
    """The chat's topic filter: "all" (empty value) first, then the kb's topics in learning order."""
    return [(t(lang, "topic_all"), "")] + [(topic_name(x, lang), x) for x in sorted(topics, key=topic_rank)]


def topic_rank(topic: str) -> tuple[int, str]:
    """Learning order: the fixed sequence first, then the remaining topics alphabetically."""
    return (TOPIC_ORDER.index(topic), "") if topic in TOPIC_ORDER else (len(TOPIC_ORDER), topic)
