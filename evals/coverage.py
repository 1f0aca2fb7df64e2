"""Knowledge coverage: the share of the source article's atomic facts (evals/facts/seed_facts.yaml) that the kb
states, per language.

seed_facts.yaml is a list (or {facts: [...]}) of
    {id, fact, ja: {doc, section, terms: [...]}, en: {doc, section, terms: [...]}}
A fact is covered in a language when the named section exists in kb/<lang>/<doc>.md and every term occurs in its
text (compared with text.squash: NFKC, lower case, no whitespace). A missing or null language entry counts as not
covered there. The denominator is every fact in the file, for both languages.

`bpo-assistant kb coverage` calls coverage(settings); the eval report draws it.
"""

from __future__ import annotations

from pathlib import Path

LANGS = ("ja", "en")


class CoverageError(ValueError):
    """seed_facts.yaml missing or not the expected shape."""


def seed_facts_path() -> Path:
    # Beside this module (package data in the wheel, evals/facts/ in the checkout), not under the repository root,
    # so an installed `bpo-assistant kb coverage` finds it too.
    return Path(__file__).resolve().parent / "facts" / "seed_facts.yaml"


def load_seed_facts(path: str | Path) -> list[dict]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoverageError(f"no fact list at {path}") from None
    except yaml.YAMLError as exc:
        raise CoverageError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("facts")
    if not isinstance(data, list):
        raise CoverageError(f"{path} must be a list of facts (or a mapping with a 'facts' list)")
    return data


def _check(entry, docs, lang: str) -> str | None:
    """None when covered, else why not."""
    from bpo_assistant.text import squash

    if not isinstance(entry, dict):
        return "no location given"
    doc = docs.get((lang, str(entry.get("doc"))))
    if doc is None:
        return f"document {entry.get('doc')!r} not in kb/{lang}"
    section = next((s for s in doc.sections if s.id == str(entry.get("section"))), None)
    if section is None:
        return f"section {entry.get('section')!r} not in {lang}/{doc.id}"
    terms = entry.get("terms") or []
    if isinstance(terms, str):
        terms = [terms]
    body = squash(section.text)
    absent = [str(t) for t in terms if squash(str(t)) not in body]
    if absent:
        return f"{lang}/{doc.id}#{section.id} lacks {absent}"
    return None


def coverage(settings, path: str | Path | None = None, docs=None) -> dict:
    """{ja: share, en: share, facts: n, covered: {ja, en}, missing: [{id, lang, fact, reason}]}.

    Shares are None when the file lists no facts. Reads the kb files (no index or model needed).
    """
    from bpo_assistant.kbfiles import load_kb_docs

    facts = load_seed_facts(path or seed_facts_path())
    if docs is None:
        docs, _errors = load_kb_docs(Path(settings.kb_dir))
    covered = {lang: 0 for lang in LANGS}
    missing: list[dict] = []
    for i, fact in enumerate(facts):
        fact = fact if isinstance(fact, dict) else {}
        fid = str(fact.get("id") or f"#{i + 1}")
        for lang in LANGS:
            reason = _check(fact.get(lang), docs, lang)
            if reason is None:
                covered[lang] += 1
            else:
                missing.append({"id": fid, "lang": lang, "fact": str(fact.get("fact", "")), "reason": reason})
    n = len(facts)
    return {
        **{lang: (round(covered[lang] / n, 4) if n else None) for lang in LANGS},
        "facts": n,
        "covered": covered,
        "missing": missing,
    }
