"""The knowledge owners' loop (issue 10): question log → triage themes → one-click fixes in kb/ and evals/.

    db.py      the database layer (SQLAlchemy Core; SQLite by default, BPO_DATABASE_URL for PostgreSQL)
    qlog.py    the question log: an Assistant observer writing one row per answer
    triage.py  refused / 👎 / low-confidence questions grouped into themes, with a status per question
    fixes.py   the fixes: expected question in the bank, suite case, out of scope
"""
