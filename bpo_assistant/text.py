"""Text utilities shared by ingest and query: normalisation, sentence splitting, language, tokens.

Defined once here so the index and the query see text the same way.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .phrasebook import HOME_EN, PLACES_EN

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_JA_CHARS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z]")
_ENDERS = "。！？!?"
_OPEN = "「『（(【［"
_CLOSE = "」』）)】］"
_EN_ABBREV = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Ms.", "Dr.", "Inc.", "Co.", "Ltd.", "No.")
_BULLET = re.compile(r"^\s*(?:[-*・•]|\d+[.)])\s+")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII and half-width kana fold), control characters removed, lone surrogates as U+FFFD
    (MeCab and the embedder cannot encode them; a question pasted from a broken UTF-16 source carries them)."""
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _CONTROL.sub("", unicodedata.normalize("NFKC", text))


def char_bigrams(text: str) -> set[str]:
    """The character pairs of `text`: how close two Japanese sentences are without a tokenizer or a model (which
    kb sentence a curated answer quotes, which section sentences a draft answer takes)."""
    return {text[i : i + 2] for i in range(len(text) - 1)}


def squash(text: str) -> str:
    """Comparison form used by fact checks: NFKC, lower case, no whitespace."""
    return "".join(ch for ch in normalize(text).lower() if not ch.isspace())


_KANA = re.compile(r"[\u3040-\u30ff]")


def detect_lang(text: str) -> str:
    """'ja' when the text has kana, or Japanese script in a meaningful share; else 'en'."""
    if _KANA.search(text) and not re.search(r"[A-Za-z]{3,}(\s+[A-Za-z]{2,}){3,}", text):
        return "ja"  # English never contains kana; an English sentence quoting a Japanese term stays English
    ja = len(_JA_CHARS.findall(text))
    latin = len(_LATIN.findall(text))
    if ja == 0:
        return "en"
    # Japanese questions often carry Latin acronyms (BPO, ITO, SLA); a few kana are enough.
    return "ja" if ja * 3 >= latin or ja >= 4 else "en"


def split_sentences(text: str) -> list[str]:
    """Split into sentences on 。！？ and line breaks (Japanese) and on . ! ? + space (English).

    LangChain's RecursiveCharacterTextSplitter cuts by length and would split inside Japanese sentences, which
    has no spaces; quoting single sentences needs exact sentence boundaries, so this small splitter exists.
    Nothing is split inside 「」 or （）.
    """
    out: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        out.extend(_split_line(line))
    return [s for s in (s.strip() for s in out) if s]


def _split_line(line: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(line):
        ch = line[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
        elif depth == 0 and ch in _ENDERS:
            while i + 1 < len(line) and line[i + 1] in _ENDERS + _CLOSE:
                i += 1
            parts.append(line[start : i + 1])
            start = i + 1
        elif depth == 0 and ch == "." and _is_en_boundary(line, i):
            parts.append(line[start : i + 1])
            start = i + 1
        i += 1
    parts.append(line[start:])
    return parts


def _is_en_boundary(line: str, i: int) -> bool:
    nxt = line[i + 1 : i + 3]
    if not nxt or nxt[0] != " " or len(nxt) < 2 or not (nxt[1].isupper() or nxt[1].isdigit() or nxt[1] in "\"'(["):
        return i + 1 == len(line)
    head = line[: i + 1]
    return not any(head.endswith(a) for a in _EN_ABBREV)


# Parts of speech kept for keyword matching (unidic's pos1): content words only, so particles such as
# は/が/の do not make every Japanese sentence look alike.
_CONTENT_POS = {"名詞", "動詞", "形容詞", "形状詞", "副詞", "接頭辞", "代名詞"}
_STOP = {"する", "ある", "いる", "なる", "れる", "られる", "こと", "もの", "よう", "ため", "これ", "それ", "the", "a", "an",
         "of", "to", "and", "or", "in", "on", "for", "is", "are", "be", "what", "how", "with", "by", "it", "its",
         "do", "does", "can", "as", "at", "from", "that", "this", "which", "about", "me", "i", "we", "you", "our"}


@lru_cache(maxsize=1)
def _tagger():
    # Imported lazily: fugashi loads the unidic-lite dictionary (~50 MB) when built.
    import fugashi

    return fugashi.Tagger()


_GENERIC_NOUNS = {"何", "なに", "方", "点", "件", "話", "感じ", "具体", "的", "詳細", "今", "普通", "一般", "場合", "とき", "時",
                  "ところ", "ほう", "どれ", "どこ", "いつ", "誰", "いくつ", "くらい", "ぐらい", "程度", "意味", "教え"}


def nouns(text: str) -> list[str]:
    """Content nouns (and Latin words): what a question is about, without its chatty verbs (教えて, 知りたい)."""
    return [lemma for lemma, _ in noun_forms(text)]


def noun_forms(text: str) -> list[tuple[str, str]]:
    """nouns() as (lemma, surface as written) pairs: the lemma to look up (セキュリティー), the surface to show in a
    rewritten query (セキュリティ)."""
    text = normalize(text).lower()
    out = []
    for word in _tagger()(text):
        surface = word.surface
        pos = getattr(word.feature, "pos1", "") or ""
        if _LATIN.match(surface):
            token = surface
        elif pos == "名詞" and getattr(word.feature, "pos2", "") not in ("数詞", "非自立可能", "代名詞"):
            lemma = getattr(word.feature, "lemma", None) or surface
            token = lemma.split("-")[0] if _JA_CHARS.search(lemma) else surface
        else:
            continue
        if token not in _STOP and token not in _GENERIC_NOUNS and any(unicodedata.category(c)[0] in "LN" for c in token):
            out.append((token, surface))
    return out


# Capitalised, then lower case (Toyota, Accenture): not ALL CAPS, which are acronyms (SLA, NDA) or shouting.
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]{2,})\b")
_CAPITALISED_ANYWHERE = re.compile(r"(?<![A-Za-z])([A-Z][a-z]{2,})(?![A-Za-z])")


def proper_nouns(text: str) -> list[str]:
    """Names: MeCab's 固有名詞 other than places (トヨタ, パソナ) and capitalised Latin words that do not start a sentence
    (Toyota, Accenture). Lower-cased like the kb vocabulary, so a name the kb uses (BPO, アジア) can be told apart."""
    text = normalize(text)
    # Place names (日本, ベトナム) are left out: 「日本企業は…」 is an ordinary question, and the answer-type checks
    # catch the place questions the kb cannot answer (rankings, prices).
    # One kanji is no name: MeCab reads 高 in 「レベル低・中・高」 as a surname.
    out = [w.surface.lower() for w in _tagger()(text)
           if getattr(w.feature, "pos2", "") == "固有名詞" and getattr(w.feature, "pos3", "") != "地名"
           and len(w.surface) > 1]
    # A capital opening an English sentence is grammar; opening a Japanese one (「Pythonで…」) it is a name.
    latin = _CAPITALISED_ANYWHERE if _KANA.search(text) else _CAPITALISED
    out += [m.group(1).lower() for m in latin.finditer(text.strip()) if m.group(1).lower() not in HOME_EN]
    # An English function word is no name even in capitals (MeCab tags 「IT周り」's IT as one): the vocabulary it
    # is checked against is built without stop words, so it could never be found there.
    return [w for w in dict.fromkeys(out) if w not in _STOP]


def person_names(text: str) -> list[str]:
    """MeCab's personal names (姓, 名): what a "who proposed it" question needs its evidence to show."""
    return list(dict.fromkeys(w.surface for w in _tagger()(normalize(text)) if getattr(w.feature, "pos3", "") == "人名"
                              and len(w.surface) > 1))


def place_names(text: str) -> list[str]:
    """MeCab's place names (ベトナム, フィリピン, 大阪) and PLACES_EN, lower-cased like the kb vocabulary."""
    text = normalize(text)
    out = [w.surface.lower() for w in _tagger()(text) if getattr(w.feature, "pos3", "") == "地名"]
    out += [w for w in re.findall(r"[A-Za-z]+", text.lower()) if w in PLACES_EN]
    return list(dict.fromkeys(out))


_HIRAGANA_RUN = re.compile(r"[\u3041-\u3096ー]{3,}")
_KATAKANA_WORD = re.compile(r"[\u30a1-\u30faー]{3,}")


def katakana_words(texts) -> frozenset[str]:
    """The katakana words (≥ 3 characters) as the kb writes them (セキュリティ, not MeCab's lemma セキュリティー):
    the loanwords a question may type in hiragana."""
    return frozenset(w for t in texts for w in _KATAKANA_WORD.findall(normalize(t)))


def fold_loanwords(text: str, words: frozenset[str]) -> str:
    """「せきゅりてぃ面」 → 「セキュリティ面」: inside each hiragana run, the longest stretch whose katakana form is a
    known loanword is written in katakana. Only known words: native hiragana (じゅんいにん, ちがい) stays as typed."""
    def fold(m: re.Match) -> str:
        run, out, i = m.group(0), [], 0
        while i < len(run):
            for j in range(len(run), i + 2, -1):
                kata = katakana(run[i:j])
                if kata in words:
                    out.append(kata)
                    i = j
                    break
            else:
                out.append(run[i])
                i += 1
        return "".join(out)

    return _HIRAGANA_RUN.sub(fold, text) if words else text


_HIRA_TO_KATA = {c: c + 0x60 for c in range(0x3041, 0x3097)}


def katakana(text: str) -> str:
    """Hiragana as katakana, one character for one (offsets into the text stay valid)."""
    return text.translate(_HIRA_TO_KATA)


def tokenize(text: str) -> list[str]:
    """Content-word tokens for BM25 and keyword overlap, for Japanese and English alike.

    Japanese goes through MeCab (fugashi + unidic-lite), never whitespace splitting; Latin words are
    lower-cased. Lemmas are used so 委託する/委託し/委託 meet.
    """
    text = normalize(text).lower()
    tokens: list[str] = []
    for word in _tagger()(text):
        surface = word.surface
        feature = word.feature
        pos = getattr(feature, "pos1", "") or ""
        if _LATIN.match(surface):
            token = surface
        else:
            if pos not in _CONTENT_POS:
                continue
            lemma = getattr(feature, "lemma", None) or surface
            # unidic lemmas of katakana loanwords carry an English gloss ("サービス-service"); keep the head.
            token = lemma.split("-")[0] if _JA_CHARS.search(lemma) else surface
        token = token.strip()
        if token and token not in _STOP and not all(unicodedata.category(c)[0] in "PSZ" for c in token):
            tokens.append(token)
    return tokens
