"""`synapse memory ...` end to end through the real command (in process), local model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def run(cli: Any, fresh_db: Path) -> Any:
    return cli


def test_add_list_search_json_edit_and_forget(run: Any) -> None:
    r = run("memory", "add", "--agent", "Assistant", "The user's sister Claire lives in Lyon.",
            "The user is allergic to peanuts.")
    assert r.code == 0 and r.out.count("added") == 2
    r = run("memory", "add", "--agent", "Assistant", "the user is allergic to peanuts.")
    assert r.out.startswith("already there")
    listed = json.loads(run("memory", "list", "--agent", "Assistant", "--json").out)
    assert sorted(m["text"] for m in listed) == ["The user is allergic to peanuts.", "The user's sister Claire lives in Lyon."]
    r = run("memory", "search", "--agent", "Assistant", "--json", "-k", "1", "where", "does", "my", "sister", "live")
    hits = json.loads(r.out)
    assert r.code == 0 and len(hits) == 1
    assert {"id", "text", "score"} <= set(hits[0]) and hits[0]["text"] == "The user's sister Claire lives in Lyon."
    sister = hits[0]["id"]
    assert run("memory", "edit", "--agent", "Assistant", str(sister), "The user's sister Claire lives in Paris.").code == 0
    history = run("memory", "history", "--agent", "Assistant").out
    assert "The user's sister Claire lives in Lyon.  ->  The user's sister Claire lives in Paris." in history
    r = run("memory", "forget", "--agent", "Assistant", str(sister))
    assert r.code == 0 and "forgot" in r.out
    left = json.loads(run("memory", "list", "--agent", "Assistant", "--json").out)
    assert [m["text"] for m in left] == ["The user is allergic to peanuts."]


def test_add_from_a_file_export_and_import_into_another_agent(run: Any, tmp_path: Path) -> None:
    facts = tmp_path / "facts.txt"
    facts.write_text("Owns a red bicycle.\n\nPlays the cello.\nOwns a red bicycle.\n", encoding="utf-8")
    r = run("memory", "add", "--agent", "Assistant", "--file", str(facts))
    assert r.out.count("added") == 2 and r.out.count("already there") == 1
    out = tmp_path / "export.json"
    assert run("memory", "export", "--agent", "Assistant", "-o", str(out)).code == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["agent"] not in ("", "*") and [m["text"] for m in exported["memories"]] == \
        ["Owns a red bicycle.", "Plays the cello."]
    r = run("memory", "import", "--shared", str(out))
    assert r.out.strip() == "imported 2 memories (0 already there)"
    shared = json.loads(run("memory", "list", "--shared", "--json").out)
    assert {m["agent"] for m in shared} == {"*"}
    r = run("memory", "import", "--agent", "Assistant", "-", stdin="Plays the cello.\nSpeaks Norwegian.\n")
    assert r.out.strip() == "imported 1 memories (1 already there)"


def test_forget_all_needs_confirmation(run: Any) -> None:
    run("memory", "add", "--agent", "Assistant", "one", "two")
    r = run("memory", "forget", "--agent", "Assistant", "--all", stdin="")
    assert r.code == 2 and "add --yes to confirm" in r.err
    assert len(json.loads(run("memory", "list", "--agent", "Assistant", "--json").out)) == 2
    r = run("memory", "forget", "--agent", "Assistant", "--all", "--yes")
    assert r.out.strip() == "forgot 2 memories"
    assert json.loads(run("memory", "list", "--agent", "Assistant", "--json").out) == []


def test_mistakes_get_one_line_that_says_what_to_do(run: Any, tmp_path: Path) -> None:
    r = run("memory", "list")
    assert r.code == 2 and r.err.strip() == \
        "synapse: name the agent with --agent NAME (or --shared for the memories every agent shares)"
    r = run("memory", "add", "--agent", "Assistant")
    assert r.code == 2 and "nothing to add" in r.err
    r = run("memory", "edit", "--agent", "Assistant", "999", "text")
    assert r.code == 1 and "no memory 999" in r.err and "Traceback" not in r.err
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"text\": \"ok\"}, ", encoding="utf-8")
    r = run("memory", "import", "--agent", "Assistant", str(bad))
    assert r.code == 2 and "not valid JSON" in r.err
    r = run("memory", "import", "--agent", "Assistant", str(tmp_path / "missing.txt"))
    assert r.code == 2 and "no file" in r.err


def test_reembed_prints_progress_and_the_result(run: Any) -> None:
    run("memory", "add", "--agent", "Assistant", "one fact", "another fact")
    r = run("memory", "reembed")
    assert r.code == 0 and r.out.strip() == "2/2 memories embedded with local:multilingual-e5-small-q4"
    assert "2/2 memories in local:multilingual-e5-small-q4" in r.err


def test_restore_from_history(run: Any) -> None:
    run("memory", "add", "--agent", "Assistant", "Likes tea")
    mid = json.loads(run("memory", "list", "--agent", "Assistant", "--json").out)[0]["id"]
    run("memory", "edit", "--agent", "Assistant", str(mid), "Likes coffee")
    entry = json.loads(run("memory", "history", "--id", str(mid), "--json").out)[0]
    assert entry["op"] == "update"
    r = run("memory", "restore", str(entry["id"]))
    assert r.code == 0 and r.out.strip() == f"restored  {mid}  Likes tea"
