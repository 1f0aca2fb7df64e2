"""One-click fix: draft a curated answer for triaged questions from the sentences of one kb section.

The draft is a new kb/curated/<id>.yaml in the format of docs/kb-format.md: the questions (the triaged one, its
theme's, then the section's own expected questions until there are the 3 phrasings the loader needs), an answer
of the section's sentences that share the most character bigrams with the questions (the same measure
curated.quoted uses to find what an answer quotes; it needs no tokenizer for Japanese and no model), each marked
[1] for the one source, the source's hash and source_hash as `kb check --fix-hashes` would stamp them, owner =
the admin, reviewed = today, and `status: draft` with a comment saying it awaits review.

Drafts are served. Every sentence is a kb sentence word for word with its citation, the text the extractive
stage would quote from that section, so serving it adds no wording nobody vetted; what a reviewer judges is the
choice and order of the sentences. Holding drafts back would need the query path (curated.py) to read `status`,
and the owner would not see the fix work, which is the point of the loop. The maintenance list shows every
draft (kind `draft`) until a reviewer deletes the `status: draft` line. The source hash means a later edit of
the section marks the draft stale, as it marks any curated answer.

The write is the bank fix's: atomic, then `kb check`; a problem the check did not have before removes the
file again and refuses the fix with the check's message, so the kb is left as it was.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..bank import _GROUP, load_bank
from ..curated import CuratedError, combine, load_raw, resolve
from ..kbfiles import load_kb_docs, section_hash, section_sentences
from ..settings import Settings
from ..text import char_bigrams, normalize
from .fixes import FixError, checked_write, unified_diff

MAX_SENTENCES = 3  # like the vetted answers' core: a short answer a reviewer can judge at a glance
MIN_QUESTIONS = 3  # curated.load_raw refuses fewer phrasings
DRAFT = "draft"


@dataclass(frozen=True)
class Draft:
    id: str
    path: str
    lang: str
    label: str  # doc#section it quotes
    questions: tuple[str, ...]
    sentences: tuple[str, ...]
    diff: str
    reason: str  # why these questions and sentences


def _key(text: str) -> str:
    return normalize(text).strip().lower()


def _grams(text: str) -> set[str]:
    return char_bigrams(re.sub(r"\s+", "", _key(text)))


def pick_sentences(sentences: list[str], questions: list[str], limit: int = MAX_SENTENCES) -> list[str]:
    """The `limit` sentences sharing the most bigrams with any question, in reading order; the section's first
    sentences when none shares any (a section's lead sentence states its subject)."""
    asked = [_grams(q) for q in questions]
    score = {i: max((len(g & _grams(s)) / (len(g) or 1) for g in asked), default=0.0) for i, s in enumerate(sentences)}
    best = sorted(score, key=lambda i: (-score[i], i))[:limit]
    return [sentences[i] for i in sorted(best)]


def _questions(asked: list[str], bank: list[str]) -> tuple[list[str], int]:
    """Asked questions first (deduplicated by NFKC and case), then bank questions up to MIN_QUESTIONS; and how
    many came from the bank."""
    out: dict[str, str] = {}
    for q in asked:
        q = re.sub(r"\s+", " ", q or "").strip()
        if not q:
            continue
        if _GROUP.search(q):
            raise FixError(f"{q!r} holds an alternation group (…|…); write that curated answer by hand")
        out.setdefault(_key(q), q)
    if not out:
        raise FixError("no question to draft an answer for")
    n = len(out)
    for q in bank:
        if len(out) >= MIN_QUESTIONS:
            break
        out.setdefault(_key(q), q)
    return list(out.values()), len(out) - n


def _free_id(kb_dir: Path, base: str, lang: str) -> str:
    taken = set()
    for path in Path(kb_dir, "curated").glob("*.yaml"):
        taken.add(path.stem)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("id"):
            taken.add(str(data["id"]))
    n, cid = 1, f"{base}-{lang}"
    while cid in taken:
        n += 1
        cid = f"{base}-{n}-{lang}"
    return cid


class _Dumper(yaml.SafeDumper):
    """The answer as a readable `|` block, as kb check --fix-hashes writes curated files."""


_Dumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def draft_curated(settings: Settings, lang: str, label: str, asked: list[str], owner: str,
                  today: datetime.date | None = None) -> Draft:
    """Write the draft curated answer for `asked` quoting section `label` ("doc#section") in `lang`; FixError
    (kb untouched) for an unknown section, no owner, too few questions, or a file kb check would reject."""
    owner = (owner or "").strip()
    if not owner:
        raise FixError("a draft needs an owner (the admin's login name)")
    doc_id, _, section_id = label.partition("#")
    kb_dir = Path(settings.kb_dir)
    docs, _ = load_kb_docs(kb_dir)
    doc = docs.get((lang, doc_id))
    section = next((s for s in doc.sections if s.id == section_id), None) if doc else None
    if section is None:
        raise FixError(f"unknown section {label} ({lang}): no such section in kb/{lang}/{doc_id}.md")
    bank = [q.text for q in load_bank(kb_dir)[0] if q.lang == lang and q.label == label]
    questions, padded = _questions(asked, bank)
    if len(questions) < MIN_QUESTIONS:
        raise FixError(f"a curated answer needs {MIN_QUESTIONS} question phrasings and {label} ({lang}) gives "
                       f"{len(questions)}; add expected questions to the section first")
    all_sentences = section_sentences(section)
    if not all_sentences:
        raise FixError(f"section {label} ({lang}) has no sentences to quote")
    chosen = pick_sentences(all_sentences, questions[: len(questions) - padded] or questions)
    mark = "[1]" if lang == "ja" else " [1]"
    cid = _free_id(kb_dir, f"draft-{doc_id}-{section_id}", lang)
    h = section_hash(all_sentences)
    data = {"id": cid, "lang": lang, "topic": doc.topic, "questions": questions,
            "answer": "\n".join(s + mark for s in chosen) + "\n",
            "sources": [{"doc": doc_id, "section": section_id, "hash": h}],
            "owner": owner, "reviewed": today or datetime.date.today(), "source_hash": combine([h]), "status": DRAFT}
    text = (f"# Draft by {owner}: the sentences of {label} for questions from the triage queue. Served as written;\n"
            "# review the questions and the sentences, then delete the `status: draft` line.\n"
            + yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000))
    path = kb_dir / "curated" / f"{cid}.yaml"
    try:  # read back as the loader will, before anything is written
        resolve(load_raw_text(text, path), path, docs)
    except CuratedError as exc:
        raise FixError(f"the draft would not load: {exc}") from None
    fresh_dir = not path.parent.exists()
    try:
        checked_write(kb_dir, path, None, text)
    except FixError:
        if fresh_dir:  # a kb without curated answers gets no empty folder from a refused draft
            path.parent.rmdir()
        raise
    why = (f"{len(chosen)} of {len(all_sentences)} sentences of {label} (most bigrams shared with the questions); "
           f"{len(questions) - padded} asked question(s)" + (f" + {padded} from the section's bank" if padded else ""))
    return Draft(cid, str(path), lang, label, tuple(questions), tuple(chosen), unified_diff(path, "", text), why)


def load_raw_text(text: str, path: Path) -> dict:
    """curated.load_raw's checks (mapping, required fields, 3 phrasings) on text not yet in the kb: read from a
    private temp folder, so nothing is written under kb/ before the checked write."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bpo-draft-") as tmp:
        probe = Path(tmp, path.name)
        probe.write_text(text, encoding="utf-8")
        try:
            return load_raw(probe)
        except CuratedError as exc:
            raise CuratedError(str(exc).replace(str(probe), str(path))) from None
