"""Saved chats (issue 12, "opt-in saved chats, per user under auth"): the store under the data dir, unit level."""

from __future__ import annotations

import json
import logging

from bpo_assistant.ui.saved import SavedChats

CITES = [{"n": 1, "doc_id": "bpo-overview", "title": "BPOとは", "section": "BPOの定義"}]


def chat(question: str = "BPOとは何ですか？", answer: str = "BPOは業務の外部委託です。[1]") -> tuple[list, dict]:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    records = {1: {"question": question, "answer": answer, "citations": CITES, "sections": ["bpo-overview#def"]}}
    return messages, records


def test_a_saved_chat_comes_back_with_its_messages_and_citations(tmp_path):
    store = SavedChats(tmp_path / "saved")
    messages, records = chat()
    saved = store.save("alice", None, messages, records)
    assert saved.reason == "saved" and saved.chat is not None
    listing = SavedChats(tmp_path / "saved").list("alice")  # a new process reads what the last one wrote
    assert [c.title for c in listing.chats] == ["BPOとは何ですか？"] and listing.skipped == ()
    back = store.load("alice", saved.chat.id)
    assert list(back.messages) == messages
    assert back.records[1]["citations"] == CITES and back.records[1]["sections"] == ["bpo-overview#def"]
    # the same id again updates that chat instead of adding one
    messages += [{"role": "user", "content": "メリットは？"}, {"role": "assistant", "content": "コスト削減です。[1]"}]
    again = store.save("alice", saved.chat.id, messages, records)
    assert again.chat.id == saved.chat.id and len(store.list("alice").chats) == 1
    assert len(store.load("alice", saved.chat.id).messages) == 4


def test_another_user_never_sees_or_deletes_them(tmp_path):
    store = SavedChats(tmp_path / "saved")
    saved = store.save("alice", None, *chat()).chat
    assert store.list("bob").chats == () and store.load("bob", saved.id) is None
    assert store.delete("bob", saved.id) is False and store.load("alice", saved.id) is not None
    assert store.list(None).chats == ()  # the no-login user is not alice either
    # a login name is hashed, never a path: "../alice" is someone else, and lands inside the store
    assert store.list("../alice").chats == () and store.folder("../alice").parent == store.root
    # a file copied into another user's folder is refused, not shown to them
    bob = store.folder("bob")
    bob.mkdir(parents=True)
    (bob / f"{saved.id}.json").write_bytes((store.folder("alice") / f"{saved.id}.json").read_bytes())
    listing = store.list("bob")
    assert listing.chats == () and "another user" in listing.skipped[0].reason


def test_delete_removes_the_chat_for_good(tmp_path):
    store = SavedChats(tmp_path / "saved")
    saved = store.save("alice", None, *chat()).chat
    assert store.delete("alice", saved.id) is True
    assert store.list("alice").chats == () and store.load("alice", saved.id) is None
    assert store.delete("alice", "../../etc/passwd") is False  # not an id: nothing outside the store is touched


def test_at_most_max_chats_per_user_the_oldest_go_first(tmp_path):
    store = SavedChats(tmp_path / "saved", max_chats=3)
    ids = [store.save("alice", None, *chat(f"質問{i}")).chat.id for i in range(5)]
    store.save("bob", None, *chat("bobの質問"))
    kept = store.list("alice").chats
    assert [c.title for c in kept] == ["質問4", "質問3", "質問2"]
    assert store.load("alice", ids[0]) is None
    assert len(store.list("bob").chats) == 1  # one user's bound never evicts another's chats


def test_a_chat_too_big_keeps_its_newest_turns_and_their_records(tmp_path):
    store = SavedChats(tmp_path / "saved", max_bytes=4096)
    messages, records = [], {}
    for i in range(20):
        messages += [{"role": "user", "content": f"質問{i}"}, {"role": "assistant", "content": "答え" * 100 + f"[{i}]"}]
        records[2 * i + 1] = {"answer": f"a{i}", "citations": [{"n": i}]}
    result = store.save("alice", None, messages, records)
    assert result.chat is not None and "dropped" in result.reason
    path = store.folder("alice") / f"{result.chat.id}.json"
    assert path.stat().st_size <= 4096
    back = store.load("alice", result.chat.id)
    assert back.messages[-1]["content"].endswith("[19]") and back.messages[0]["role"] == "user"
    last = len(back.messages) - 1
    assert back.records[last]["citations"] == [{"n": 19}]  # indexes shifted with the dropped turns
    huge = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 10_000}]
    refused = store.save("alice", None, huge, {})
    assert refused.chat is None and "larger than" in refused.reason
    assert store.save("alice", None, [], {}).reason == "nothing to save"


def test_a_corrupt_file_is_named_and_skipped_and_the_rest_listed(tmp_path, caplog):
    store = SavedChats(tmp_path / "saved")
    good = store.save("alice", None, *chat()).chat
    broken = store.folder("alice") / "0123456789abcdef.json"
    broken.write_text('{"user": "alice", "messages": [', encoding="utf-8")
    (store.folder("alice") / "fedcba9876543210.json").write_text(json.dumps({"user": "alice"}))
    with caplog.at_level(logging.WARNING, logger="bpo_assistant.ui.saved"):
        listing = store.list("alice")
    assert [c.id for c in listing.chats] == [good.id]
    assert {s.path.name for s in listing.skipped} == {"0123456789abcdef.json", "fedcba9876543210.json"}
    assert str(broken) in caplog.text  # the operator can find the file
    assert broken.read_text(encoding="utf-8") == '{"user": "alice", "messages": ['  # left as it was
    assert store.load("alice", "0123456789abcdef") is None
