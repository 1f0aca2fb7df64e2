"""The knowledge owners' loop (issue 10): question log → triage themes → one-click fixes in kb/ and evals/.

    db.py           the database layer (SQLAlchemy Core; SQLite by default, BPO_DATABASE_URL for PostgreSQL)
    qlog.py         the question log: an Assistant observer writing one row per answer
    triage.py       refused / 👎 / low-confidence questions grouped into themes, with a status per question
    fixes.py        expected question in the bank, suite case; the guarded write (atomic, then kb check)
    alias.py        glossary alias
    drafts.py       curated draft from a section's sentences
    resolve.py      `triage resolve`: one fix for given questions, then their status
    kpi.py          KPIs per day and ISO week (p95 by bpo_assistant.stats, shared with the eval report)
    maintenance.py  stale, review-due, few-questions and draft rows
"""
