"""Input hygiene and the fixed refusal phrases (defined once; tests and the UI import them).

Like paper-qa's "cannot answer" phrase, the sentinels are constants so a test can tell a refusal from an
answer without guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .text import normalize

REFUSAL_JA = "申し訳ありません。この質問はナレッジベースの対象外のため、お答えできません。"
REFUSAL_EN = "Sorry, this question is not covered by our knowledge base, so I cannot answer it."
EMPTY_PROMPT_JA = "質問を入力してください。例: 「BPOとは何ですか？」"
EMPTY_PROMPT_EN = "Please type a question, for example: \"What is BPO?\""
# (en, ja): thanks or a greeting on its own gets an invitation, not kb sentences.
SMALL_TALK_PROMPT = ("You're welcome. Ask me anything about BPO, for example: \"What is BPO?\"",
                     "どういたしまして。BPOについて知りたいことがあれば、質問をどうぞ。例: 「BPOとは何ですか？」")
NEAREST_LEAD = {"ja": "次のトピックなら回答できます:", "en": "These topics are covered:"}
TRUNCATED_NOTICE = {
    "ja": "質問が長すぎるため、先頭の{n}文字だけを使いました。",
    "en": "Your question was too long; only its first {n} characters were used.",
}

# Requests the assistant must never act on: changing its instructions, or reaching other people's data.
_OVERRIDE = re.compile(
    r"(ignore|disregard|forget|override)\s+(all\s+|the\s+|your\s+|any\s+)*(previous|prior|above|earlier)?\s*"
    r"(instructions?|prompts?|rules?)|system\s*prompt|jailbreak|developer\s+mode|admin(istrator)?\s+mode|"
    r"\[\s*system\s*\]|you\s+are\s+now|pretend\s+(to\s+be|you)|act\s+as|"
    r"(print|output|say|write|reply|respond|answer)\s+(only\s+)?(with\s+)?[\"'“‘`]|"
    r"(これまで|以前|上記|前|すべて|全て)の(指示|命令|ルール|プロンプト|設定)|指示を(無視|忘れ)|"
    # Forgetting what came before, not any 「忘れて」: "hand it off and forget about it" is a real question.
    r"システムプロンプト|管理者モード|開発者モード|(これまで|今まで|以前|さっき|前|上)の(こと|会話|話|内容)?(は|を)?"
    r"(全部|すべて|全て)?忘れて|のことは忘れて|forget\s+(about\s+)?(everything|all\b|what\s+(i|you)|your\b|the\s+(previous|above))|"
    r"モードに切り替え|あなたは(今から|これから)|になりきって|"
    r"[」』\"]\s*(と|って)\s*(だけ|のみ)?\s*(書いて|出力|表示|答えて|言って|返して)|設定を(すべて|全て)?表示",
    re.IGNORECASE,
)
# Not a bare 個人情報: 「顧客の個人情報を扱う委託先で何を確認すべき？」 is a security question the kb answers.
_OTHER_USERS = re.compile(
    r"(他の|ほかの|前の|別の)(ユーザー|利用者|人|社員)|other\s+(users?|people|employees)|"
    r"(previous|last)\s+(user|person)|someone\s+else'?s|password|パスワード",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CleanQuestion:
    text: str  # what retrieval sees
    truncated: bool
    empty: bool  # nothing to search for: prompt the user instead of answering
    override: bool  # an instruction-override attempt
    other_users: bool  # asks for other people's data


def clean_question(raw: str, max_chars: int) -> CleanQuestion:
    """Strip control characters, fold width (NFKC), cut to max_chars; never raises."""
    text = normalize(raw if isinstance(raw, str) else str(raw or ""))
    text = re.sub(r"\s+", " ", text).strip()
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars]
    meaningful = any(unicodedata.category(ch)[0] in "LN" for ch in text)
    return CleanQuestion(
        text=text,
        truncated=truncated,
        empty=not meaningful,
        override=bool(_OVERRIDE.search(text)),
        other_users=bool(_OTHER_USERS.search(text)),
    )


FOCUS_CHARS = 300  # retrieval sees at most this much: e5 dilutes a question buried in filler


def focus(text: str) -> str:
    """The part of a long message worth searching: repeated sentences (filler) once, then the first
    FOCUS_CHARS characters, where people put the question."""
    from .text import split_sentences

    unique = list(dict.fromkeys(split_sentences(text)))
    return " ".join(unique)[:FOCUS_CHARS].strip()


def strip_markup(text: str) -> str:
    """Tags are never content for retrieval (an `<img onerror>` question should still find 'BPO')."""
    return re.sub(r"<[^>]{0,200}>", " ", text)


def refusal_text(lang: str) -> str:
    return REFUSAL_EN if lang == "en" else REFUSAL_JA


def is_refusal(text: str) -> bool:
    return text.startswith(REFUSAL_JA) or text.startswith(REFUSAL_EN)
