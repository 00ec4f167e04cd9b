"""orchestra kb ... through the Typer runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()


def kb(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["kb", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_add_search_stats_forget(tmp_path: Path) -> None:
    store = str(tmp_path / "kb")
    key = "sk-ant-api03-" + "Xq7RmT2pLk9WvB4nZs8DfH3jGc6Ya1Ue5Io0PxQw"
    code, out, err = kb(
        "add",
        f"We decided to ship invoices as PDF. Key {key}",
        "--kind",
        "decision",
        "--project",
        "shop",
        "--file",
        "docs/adr/7.md",
        "--store",
        store,
        "--json",
    )
    assert code == 0, err
    added = json.loads(out)
    assert added["redactions"] == ["anthropic_key"]
    code, out, err = kb(
        "add",
        "-",
        "--kind",
        "note",
        "--project",
        "shop",
        "--store",
        store,
        input="Invoices are numbered per calendar year.",
    )
    assert code == 0, err

    code, out, err = kb(
        "search", "ship invoices as PDF", "--project", "shop", "--json", "--store", store
    )
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["id"] == added["id"]
    assert hits[0]["source"]["file"] == "docs/adr/7.md"
    assert key not in out

    code, out, _ = kb("search", "invoices", "--kind", "note", "--store", store)
    assert code == 0 and "numbered per calendar year" in out and "PDF" not in out

    code, out, _ = kb("stats", "--json", "--store", store)
    stats = json.loads(out)
    assert stats["total"] == 2 and stats["by_kind"] == {"decision": 1, "note": 1}

    code, out, _ = kb("forget", "--source", "file:docs/adr/7.md", "--store", store, "--json")
    assert code == 0 and json.loads(out) == {"removed": 1}
    code, out, _ = kb("prune", "--kind", "note", "--days", "0", "--store", store, "--json")
    assert code == 0 and json.loads(out)["total"] == 1


def test_ingest_command(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text(
        'def greet(name):\n    """Say hello to someone."""\n    return name\n'
    )
    (repo / "image.bin").write_bytes(b"\0\1\2")
    store = str(tmp_path / "kb")
    code, out, err = kb("ingest", str(repo), "--project", "demo", "--store", store, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["files_indexed"], report["chunks_added"], report["skipped_binary"]) == (1, 1, 1)
    code, out, _ = kb("ingest", str(repo), "--project", "demo", "--store", store)
    assert code == 0 and "0 indexed, 1 unchanged" in out
    code, out, _ = kb("search", "greeting a person", "--store", store)
    assert "app.py::greet" in out and "app.py:1-3" in out


def test_errors_show_a_fix_and_exit_2(tmp_path: Path) -> None:
    store = str(tmp_path / "kb")
    code, _, err = kb("add", "text", "--kind", "rumour", "--store", store)
    assert code == 2 and "unknown kind" in err and "fix:" in err
    code, _, err = kb("search", "x", "--mode", "psychic", "--store", store)
    assert code == 2 and "hybrid, vector or text" in err
    code, _, err = kb("forget", "--source", "everything", "--store", store)
    assert code == 2 and "TYPE:VALUE" in err
    code, _, err = kb("prune", "--kind", "note", "--store", store)
    assert code == 2 and "--days" in err
    private = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOg\n-----END RSA PRIVATE KEY-----"
    code, out, err = kb("add", "-", "--store", store, input=private)
    assert code == 2 and "private key" in err and "MIIBOg" not in out + err
    code, _, err = kb("ingest", str(tmp_path / "missing"), "--store", store)
    assert code == 2 and "not a folder" in err


def test_hook_command_exit_codes(tmp_path: Path) -> None:
    code, out, _ = kb("hook", "session-start", input=json.dumps({"cwd": str(tmp_path)}))
    assert code == 0 and out == ""
    code, _, err = kb("hook", "pre-compact", input="not json")
    assert code == 1 and "not JSON" in err
    code, _, err = kb("hook", "post-everything", input="{}")
    assert code == 1 and "unknown event" in err


def test_model_change_then_reembed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.knowledge.conftest import EmbeddingServer

    store = str(tmp_path / "kb")
    code, _, err = kb("add", "Orders ship from the Leeds warehouse.", "--project", "shop",
                      "--store", store)  # fmt: skip
    assert code == 0, err
    with EmbeddingServer() as server:
        monkeypatch.setenv("ORCHESTRA__KNOWLEDGE__EMBEDDING__PROVIDER", "openai")
        monkeypatch.setenv("ORCHESTRA__KNOWLEDGE__EMBEDDING__BASE_URL", server.base_url)
        monkeypatch.setenv("ORCHESTRA__KNOWLEDGE__EMBEDDING__MODEL", "fake-embed")
        code, _, err = kb("search", "warehouse", "--store", store)
        assert code == 2 and "orchestra kb reembed" in err
        code, out, err = kb("reembed", "--yes", "--store", store)
        assert code == 0, err
        assert "re-embedded 1 entries with openai:fake-embed" in out
        code, out, err = kb("search", "leeds warehouse", "--store", store, "--json")
        assert code == 0, err
        assert json.loads(out)[0]["text"] == "Orders ship from the Leeds warehouse."
