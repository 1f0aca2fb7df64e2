"""Curated (vetted) answers: loading, source hashes and staleness, and matching a question to them."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .bank import expand
from .kbfiles import section_hash, section_sentences
from .text import char_bigrams, nouns
from .types import Citation, SourceDoc

_MARKER = re.compile(r"\[(\d+)\]")
STALE_NOTICE = {
    "ja": "注意: この確認済み回答の出典はレビュー後に更新されています。最新の出典を確認してください。",
    "en": "Note: the sources of this verified answer changed after it was reviewed; check the current sources.",
}


@dataclass(frozen=True)
class CuratedAnswer:
    id: str
    lang: str
    topic: str
    questions: tuple[str, ...]
    answer: str
    sources: tuple[tuple[str, str, str], ...]  # (doc, section, hash stamped at review)
    source_hash: str
    owner: str
    reviewed: str
    path: str
    citations: tuple[Citation, ...] = ()
    stale_sections: tuple[str, ...] = ()  # "doc#section" whose text changed since review

    @property
    def stale(self) -> bool:
        return bool(self.stale_sections)


def curated_base(curated_id: str, lang: str) -> str:
    """what-is-bpo-ja and what-is-bpo-en are one answer in two languages: one router class."""
    suffix = f"-{lang}"
    return curated_id[: -len(suffix)] if curated_id.endswith(suffix) else curated_id


class CuratedError(ValueError):
    pass


def load_raw(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise CuratedError(f"{path}:1: curated answer must be a YAML mapping")
    for name in ("id", "lang", "topic", "questions", "answer", "sources", "owner", "reviewed"):
        if data.get(name) in (None, "", []):
            raise CuratedError(f"{path}:1: field '{name}' is missing or empty")
    if len(data["questions"]) < 3:
        raise CuratedError(f"{path}:1: needs at least 3 question phrasings, has {len(data['questions'])}")
    return data


def current_hashes(sources, lang: str, docs: dict[tuple[str, str], SourceDoc]) -> list[str | None]:
    """Hash of each cited section as the kb has it now; None when the section does not resolve."""
    out: list[str | None] = []
    for doc_id, section_id, *_ in sources:
        doc = docs.get((lang, doc_id))
        section = next((s for s in doc.sections if s.id == section_id), None) if doc else None
        out.append(section_hash(section_sentences(section)) if section else None)
    return out


def _bigrams(text: str) -> set[str]:
    return char_bigrams(_MARKER.sub("", text).strip())


def cited_sentences(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    """(sentence, its [n] markers): a marker written after the 。 belongs to the sentence before it."""
    from .text import split_sentences

    out: list[tuple[str, tuple[int, ...]]] = []
    for piece in split_sentences(answer):
        marks = tuple(int(m) for m in _MARKER.findall(piece))
        body = _MARKER.sub("", piece).strip()
        if not body and out:
            out[-1] = (out[-1][0], out[-1][1] + marks)
        elif body:
            out.append((body, marks))
    return out


def marker_problem(answer: str, n_sources: int) -> str | None:
    """Why the answer's [n] markers are unusable (a sentence without one, or one outside 1..n_sources)."""
    if any(not marks for _, marks in cited_sentences(answer)):
        return "a sentence of the answer has no [n] source marker"
    markers = {int(m) for m in _MARKER.findall(answer)}
    if not markers or not markers <= set(range(1, n_sources + 1)):
        return f"[n] markers {sorted(markers)} outside 1..{n_sources}"
    return None


def quoted(answer: str, n: int, sentences: list[str]) -> str:
    """The section sentences that back the answer's [n] sentences (closest by character bigrams, which works
    for Japanese without a tokenizer), so the UI highlights what was quoted rather than the whole section."""
    picked: list[str] = []
    for line, marks in cited_sentences(answer):
        if n not in marks:
            continue
        grams = _bigrams(line)
        best = max(sentences, key=lambda s: len(grams & _bigrams(s)) / (len(grams | _bigrams(s)) or 1), default=None)
        if best and best not in picked:
            picked.append(best)
    ordered = [s for s in sentences if s in picked]  # reading order
    return " ".join(ordered or sentences)


def combine(hashes: list[str | None]) -> str:
    return hashlib.sha256("\n".join(h or "-" for h in hashes).encode()).hexdigest()[:16]


def resolve(data: dict, path: Path, docs: dict[tuple[str, str], SourceDoc]) -> CuratedAnswer:
    lang = str(data["lang"])
    sources = tuple((str(s["doc"]), str(s["section"]), str(s.get("hash", ""))) for s in data["sources"])
    now = current_hashes(sources, lang, docs)
    citations, stale = [], []
    for n, ((doc_id, section_id, stamped), h) in enumerate(zip(sources, now), start=1):
        if h is None:
            raise CuratedError(f"{path}:1: source [{n}] {doc_id}#{section_id} ({lang}) does not resolve")
        doc = docs[(lang, doc_id)]
        section = next(s for s in doc.sections if s.id == section_id)
        citations.append(Citation(n, doc_id, doc.title, section.title, section_id, lang,
                                  quoted(str(data["answer"]), n, section_sentences(section))))
        if stamped != h:
            stale.append(f"{doc_id}#{section_id}")
    if str(data.get("source_hash", "")) != combine(now) and not stale:
        stale = [f"{d}#{s}" for d, s, _ in sources]
    problem = marker_problem(str(data["answer"]), len(sources))
    if problem:
        raise CuratedError(f"{path}:1: {problem}")
    return CuratedAnswer(
        id=str(data["id"]), lang=lang, topic=str(data["topic"]), questions=tuple(e for q in data["questions"] for e in expand(str(q))),
        answer=str(data["answer"]).strip(), sources=sources, source_hash=str(data.get("source_hash", "")),
        owner=str(data["owner"]), reviewed=str(data["reviewed"]), path=str(path),
        citations=tuple(citations), stale_sections=tuple(stale),
    )


def duplicates(kb_dir: Path) -> dict[Path, str]:
    """Curated files whose id an earlier file (by sorted path) already has: path -> reason naming both. They
    are skipped everywhere (answering, routing, ingest's report), so one id is always one vetted answer."""
    first: dict[str, Path] = {}
    out: dict[Path, str] = {}
    for path in sorted(Path(kb_dir, "curated").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # reported by whoever loads it
        cid = str(data.get("id")) if isinstance(data, dict) and data.get("id") else None
        if cid is None:
            continue
        if cid in first:
            out[path] = (f"duplicate curated id {cid!r}: {first[cid]} has it too and comes first by path, so this "
                         "file is skipped; give it its own id")
        first.setdefault(cid, path)
    return out


def load_curated(kb_dir: Path, docs: dict[tuple[str, str], SourceDoc]) -> tuple[list[CuratedAnswer], list[str]]:
    answers, errors = [], []
    skipped = duplicates(kb_dir)
    errors += [f"{path}:1: {reason}" for path, reason in skipped.items()]
    for path in sorted(Path(kb_dir, "curated").glob("*.yaml")):
        if path in skipped:
            continue
        try:
            answers.append(resolve(load_raw(path), path, docs))
        except (CuratedError, yaml.YAMLError, KeyError, TypeError) as exc:
            errors.append(str(exc) if isinstance(exc, CuratedError) else f"{path}:1: {exc}")
    return answers, errors


def _detail_missed(turn, kb, chosen) -> str:
    """A specific word of the question (one only one or two kb documents use: 金融, マーケティング) that the vetted
    answer's own documents use and its text never mentions: 「金融業ですが、ベンダー選びの注意点は？」 deserves the kb
    sentence on 金融's 法令遵守, which the general checklist answer leaves out, so the grounded stage answers instead.
    A specific word of another document (関係) says nothing about what this answer left out."""
    from .text import squash

    text, own = squash(chosen.answer), {c.doc_id for c in chosen.citations}
    return next((n for n, docs in kb.specific_nouns(turn.query)
                 if len(n) > 1 and docs & own and squash(n) not in text), "")


def _definition_missed(turn, chosen) -> bool:
    """「そもそもDXって何をすることなの？」 asks what a thing is; a vetted answer on how DX and BPO relate defines
    neither, while the kb's definition sentence is one grounded answer away. A comparison asks for the difference,
    which a comparison answer gives without a definition cue."""
    from .phrasebook import INTENTS

    if "definition" not in turn.intents or {"difference", "choice"} & set(turn.intents):
        return False
    return not INTENTS["definition"][1].search(chosen.answer)


def _belief_uncorrected(turn, chosen) -> bool:
    """「BPOってしょせんコストカットの手段でしょ？」 belittles; the vetted cost-reduction answer agrees with it and
    corrects nothing, while the grounded stage opens with the kb's correction (「…だけの手段ではなく」). Only a
    belittling belief: 「要は…ってことでしょ？」 asks to confirm, and a vetted definition answers that."""
    from .phrasebook import DISMISSIVE, answers_intent

    return bool(DISMISSIVE.search(turn.query)) and not answers_intent(chosen.answer, ("premise",))


@functools.lru_cache(maxsize=4096)
def _heading_nouns(heading: str) -> frozenset[str]:
    """Headings are few and fixed per generation: MeCab runs once per heading, not per question (0.5 ms a call)."""
    return frozenset(nouns(heading))


def _part_named(turn, kb, chosen) -> str:
    """「データ入力みたいな事務作業も対象になる？」 names one part of what a vetted overview covers: the overview
    (target-operations' 全体像) lists 事務業務 in a line, while the part's own section says what it is and why it is
    outsourced (定型, 付加価値), so the grounded stage answers from it. A part is named when a noun of its heading
    that neither the overview's heading nor the document's title uses is in the question; returns that section."""
    doc, lead = chosen.sources[0][:2]
    parts = kb.doc_sections.get((chosen.lang, doc), ())
    if not parts or parts[0][2] != lead:  # the vetted answer is not a document's overview
        return ""
    title, lead_title, _ = kb.section(chosen.lang, doc, lead)
    common = _heading_nouns(title) | _heading_nouns(lead_title)
    asked = set(nouns(turn.asked))
    for key in parts[1:]:
        if asked & (_heading_nouns(kb.sections[key][1]) - common):
            return key[2]
    return ""


def answer(turn, kb, settings) -> "Answer | None":
    """Stage: a vetted answer when the curated router picks it with calibrated probability ≥ curated_min_p, the
    section router agrees (its top section is the answer's first source: "why BPO" answers that also cite core
    competence must not answer a core-competence question; +1 holdout, dev unchanged), and the question is close to a phrasing the
    routers know (a question unlike every training question gets an unreliable probability)."""
    from . import gate
    from .types import Answer, AnswerSentence

    if kb.curated_router is None or not turn.query or not len(kb.questions):
        return None
    if turn.compound:  # 「メリットと注意点を両方」: one vetted answer covers one point; the grounded stage spans
        return None
    base, p = kb.curated_router.ranked(turn.qvec)[0]
    chosen = kb.curated_by_base.get((base, turn.lang))
    if chosen is None or p < settings.curated_min_p:
        return None
    lead = "{}#{}".format(*chosen.sources[0][:2])
    if turn.routed and turn.routed[0][0] != lead:
        return None
    nearest = float(turn.question_sims.max())
    if nearest < settings.curated_min_cos or not kb.within(chosen.citations, turn.topic):
        return None
    if gate.asks_for_missing_type(turn.query, chosen.answer):
        return None
    if gate.known_share(turn.asked, kb.vocab, gate.POINTER_NOUNS) == 0.0:
        return None
    if (_detail_missed(turn, kb, chosen) or _definition_missed(turn, chosen) or _belief_uncorrected(turn, chosen)
            or _part_named(turn, kb, chosen)):
        return None
    sentences = tuple(AnswerSentence(body, marks) for body, marks in cited_sentences(chosen.answer))
    text = chosen.answer + "\n\n" + ("出典:" if chosen.lang == "ja" else "Sources:") + "\n" + "\n".join(
        f"- {c.label}" for c in chosen.citations)
    notice = " ".join(x for x in (turn.notice, STALE_NOTICE[chosen.lang] if chosen.stale else "") if x)
    return Answer(text, sentences, chosen.citations, curated=True, standalone_query=turn.query, lang=chosen.lang,
                  kind="curated", notice=notice, stale=chosen.stale, retrieved=kb.chunk_ids(chosen.citations),
                  confidence=p, reason=f"curated {chosen.id} (p={p:.2f}, nearest phrasing cos {nearest:.3f})",
                  timings=turn.timer.done("curated"))
