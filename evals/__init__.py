"""Q&A regression suites: load JSONL cases, score the assistant (and the peer pipeline), gate against a
baseline, write reports.

Stages, one module each: suite (load + validate) -> runner (ask, time out, collect) -> metrics (pass rules and
aggregates) -> gate (baseline comparison) -> report (Markdown + self-contained HTML). coverage measures how much of
the source article's fact list the kb states; baseline_pipeline is the peer LangChain pipeline (hybrid, tuned) we compare with.
"""
