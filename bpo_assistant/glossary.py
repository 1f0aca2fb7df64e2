"""kb/glossary.yaml: term detection in questions and query expansion (variants, aliases, ja↔en)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .text import katakana, normalize


@dataclass(frozen=True)
class Term:
    term: str  # canonical Japanese
    en: str
    reading: str
    variants: tuple[str, ...]
    definition_ja: str
    definition_en: str
    doc: str
    section: str = ""  # the section of `doc` that defines the term

    def label(self, lang: str) -> str:
        return self.en.split(" (")[0] if lang == "en" else self.term


def text_key(text: str) -> str:
    """The form Glossary.spans() indexes into: NFKC, lower case, hiragana as katakana (loanwords typed in hiragana,
    あうとそーしんぐ, then meet the katakana variants; folding keeps one character for one, so spans keep offsets)."""
    return katakana(normalize(text).lower())


_key = text_key
_ACRONYM = re.compile(r"[A-Z]{3,4}")
_SLIP = re.compile(r"(?<![A-Za-z])[A-Z]{3,4}(?![A-Za-z])")
NOT_SLIPS = frozenset({"IOT", "POS", "TOB", "OBP"})  # acronyms of other things whose letters match one of ours


class Glossary:
    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms
        # Longest surface first so 準委任契約 wins over 委任契約, and シェアードサービスセンター over シェアードサービス.
        surfaces = []
        for t in terms:
            for s in {t.term, t.reading, t.en, *t.variants}:
                if s and len(_key(s)) >= 2:
                    surfaces.append((_key(s), t))
        surfaces.sort(key=lambda p: -len(p[0]))
        self._surfaces = surfaces
        self._patterns = [(re.compile(self._pattern(s)), s, t) for s, t in surfaces]
        self.phrasings: list[tuple[str, tuple[str, ...], str]] = []  # (lang, everyday forms, kb word)
        # sorted letters → acronym, for fix_acronym_slips on every question (built once here, not per question)
        self._acronyms = {"".join(sorted(t.term)): t.term for t in terms if _ACRONYM.fullmatch(t.term)}

    @staticmethod
    def _pattern(surface: str) -> str:
        # ASCII surfaces need word boundaries ("IT" must not match inside "ITO" or "with"); Japanese has none.
        if surface.isascii():
            return r"(?<![a-z0-9])" + re.escape(surface) + r"(?![a-z0-9])"
        return re.escape(surface)

    @classmethod
    def load(cls, path: Path) -> "Glossary":
        if not Path(path).exists():
            return cls([])
        rows = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
        terms = [
            Term(
                term=str(r["term"]), en=str(r.get("en", "")), reading=str(r.get("reading", "")),
                variants=tuple(str(v) for v in r.get("variants") or ()),
                definition_ja=str(r.get("definition_ja", "")), definition_en=str(r.get("definition_en", "")),
                doc=str(r.get("doc", "")), section=str(r.get("section", "")),
            )
            for r in rows
        ]
        return cls(terms)

    def spans(self, text: str) -> list[tuple[int, int, Term]]:
        """(start, end, term) of each mention in the normalized, lower-cased text, longest match wins."""
        key = _key(text)
        taken = [False] * len(key)
        found: list[tuple[int, int, Term]] = []
        for pattern, _surface, term in self._patterns:
            for m in pattern.finditer(key):
                if any(taken[m.start() : m.end()]):
                    continue
                for i in range(m.start(), m.end()):
                    taken[i] = True
                found.append((m.start(), m.end(), term))
        return sorted(found, key=lambda p: p[0])

    def respell(self, text: str, vocab: frozenset[str] = frozenset()) -> str:
        """A question as the kb would spell it: kana readings as their terms, acronym slips as the acronym."""
        return self.fix_acronym_slips(self.spell_readings(text), vocab)

    def fix_acronym_slips(self, text: str, vocab: frozenset[str] = frozenset()) -> str:
        """「BOPって何？」: an upper-case word of 3–4 letters the kb never uses, whose letters are a glossary acronym's
        reordered, is that acronym mistyped. Reordered letters only: one wrong letter (BPA) could be several.
        Real acronyms of other things (IOT) are in NOT_SLIPS."""
        def fix(m: re.Match) -> str:
            word = m.group(0)
            if word in NOT_SLIPS or word.lower() in vocab or word in vocab:
                return word
            return self._acronyms.get("".join(sorted(word)), word)

        return _SLIP.sub(fix, text) if self._acronyms else text

    def spell_readings(self, text: str) -> str:
        """「ゼンカンチュウイギム」 → 「善管注意義務」, 「ビーピーオー」 → 「BPO」: a term typed as its kana reading is
        written as the term. The dense arm copes with a reading, but the gate's "does the kb use these words" check
        tokenizes a katakana run as one unknown word and refused. Hiragana is rewritten only from 6 kana: a short
        one is often another word with the same sound (けんしゅう is 研修 more often than 検収)."""
        plain = normalize(text)
        out, last = [], 0
        for start, end, term in self.spans(plain):
            typed, reading = plain[start:end], _key(term.reading)
            if reading != _key(typed) or reading == _key(term.term):
                continue
            if len(typed) >= 4 and (typed == katakana(typed) or len(typed) >= 6):
                out += [plain[last:start], term.term]
                last = end
        return "".join(out) + plain[last:] if out else text

    def find(self, text: str) -> list[Term]:
        """Terms mentioned in text, in order of appearance, longest match wins, each term once."""
        seen: set[str] = set()
        ordered = []
        for _, _, term in self.spans(text):
            if term.term not in seen:
                seen.add(term.term)
                ordered.append(term)
        return ordered

    def with_phrasings(self, path: Path) -> "Glossary":
        """Add kb/phrasings.yaml: everyday wording (気をつけること) mapped to the kb's word (注意点)."""
        if Path(path).exists():
            rows = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
            self.phrasings = [(str(r.get("lang", "ja")), tuple(_key(str(x)) for x in r.get("says", []) if x),
                               str(r["kb_word"])) for r in rows if isinstance(r, dict) and r.get("kb_word")]
        return self

    def phrasing_words(self, text: str, lang: str) -> list[str]:
        key = _key(text)
        return [word for lg, says, word in self.phrasings if lg == lang and word not in key
                and any(s in key for s in says)]

    def expand(self, text: str, lang: str) -> str:
        """Extra words for the keyword arm: the canonical name and the other language's name of each term."""
        extra: list[str] = []
        for term in self.find(text):
            extra.append(term.term)
            if term.en:
                extra.append(term.en.split(" (")[0])
        extra += self.phrasing_words(text, lang)
        return " ".join(dict.fromkeys(extra))

    def canonicalize(self, text: str, lang: str = "ja") -> str:
        """Append the canonical name of each term written in a variant form (コールセンター → コンタクトセンター),
        so the dense arm meets the kb's own wording."""
        plain = normalize(text).lower()  # not folded: 「あうとそーしんぐ」 still needs its katakana appended
        extra = [t.label(lang) for t in self.find(text) if normalize(t.label(lang)).lower() not in plain]
        return f"{text} ({' '.join(extra)})" if extra else text

    def by_name(self, name: str) -> Term | None:
        key = _key(name)
        for t in self.terms:
            if key in {_key(t.term), _key(t.en), *(_key(v) for v in t.variants)}:
                return t
        return None
