"""Gradio chat app: a thin shell over `Assistant.ask` (see app.py).

render.py holds the pure HTML/Markdown rendering (unit-tested), chat.py the respond/feedback logic, onboarding.py
and knowledge.py the two reading tabs, labels.py the ja/en UI strings, auth.py the optional login.
"""
