"""The merge queue on real git repositories: branches land in order, a conflict or red
tests after the rebase leave main untouched with the reason, one lander at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestra.landing import Lander, LandingError, enqueue, entries, lander, queue_run
from orchestra.store import Database
from tests.landing.conftest import CALC, TESTS, BranchMaker, run_git


def _log(repo: Path) -> list[str]:
    return run_git(repo, "log", "--format=%s", "main").splitlines()


def test_two_branches_land_in_order_each_rebased_and_tested(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("feature-mul", {"mul.py": "def mul(a, b):\n    return a * b\n"})
    branch("feature-div", {"div.py": "def div(a, b):\n    return a / b\n"})
    first = enqueue(database, str(repo), "feature-mul", "main", requested_by="ann")
    second = enqueue(database, str(repo), "feature-div", "main", requested_by="bob")
    base = run_git(repo, "rev-parse", "main")

    done = Lander(database).process(str(repo))

    assert [(e.id, e.status) for e in done] == [(first.id, "landed"), (second.id, "landed")]
    assert _log(repo) == ["feature-div: change div.py", "feature-mul: change mul.py", "base"]
    assert done[0].onto_before == base
    # The second was rebased onto the first's landed commit, not the old base.
    assert done[1].onto_before == done[0].landed_commit
    assert run_git(repo, "rev-parse", "main") == done[1].landed_commit
    # The checkout had main checked out: its files followed.
    assert (repo / "mul.py").is_file() and (repo / "div.py").is_file()
    assert run_git(repo, "status", "--porcelain") == ""
    assert entries(database, str(repo), status="queued") == []


def test_a_conflict_is_reported_with_its_files_and_main_is_unchanged(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("ann", {"calc.py": CALC.replace("a + b", "b + a")})
    branch("bob", {"calc.py": CALC.replace("a + b", "(a + b)")})
    enqueue(database, str(repo), "ann", "main", requested_by="ann")
    bob = enqueue(database, str(repo), "bob", "main", requested_by="bob")

    ann_done, bob_done = Lander(database).process(str(repo))

    assert ann_done.status == "landed"
    assert bob_done.id == bob.id and bob_done.status == "conflict"
    assert bob_done.files == ("calc.py",)
    assert "does not rebase cleanly onto main" in (bob_done.reason or "")
    assert run_git(repo, "rev-parse", "main") == ann_done.landed_commit
    assert "b + a" in (repo / "calc.py").read_text()
    # Left for a person: the listing shows it, the branch is as it was.
    [listed] = [e for e in entries(database, str(repo)) if e.status == "conflict"]
    assert listed.files == ("calc.py",) and listed.branch == "bob"
    assert run_git(repo, "log", "--format=%s", "-1", "bob") == "bob: change calc.py"
    assert run_git(repo, "worktree", "list").count("\n") == 0  # the scratch worktree is gone


def test_a_branch_green_alone_but_red_after_the_rebase_is_refused(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    # ann changes what sub means (and its test); bob, from the old base, adds a test of
    # the old meaning. Each branch passes on its own; together they do not.
    branch(
        "ann",
        {
            "calc.py": CALC.replace("return a - b", "return abs(a - b)"),
            "tests/test_calc.py": TESTS.replace("sub(5, 3) == 2", "sub(3, 5) == 2"),
        },
    )
    branch(
        "bob",
        {
            "tests/test_more.py": "from calc import sub\n\n\ndef test_negative():\n"
            "    assert sub(3, 5) == -2\n"
        },
    )
    enqueue(database, str(repo), "ann", "main", requested_by="ann")
    enqueue(database, str(repo), "bob", "main", requested_by="bob")

    ann_done, bob_done = Lander(database).process(str(repo))

    assert ann_done.status == "landed"
    assert bob_done.status == "failed"
    assert "tests are red after rebasing bob onto main" in (bob_done.reason or "")
    assert "test_negative" in (bob_done.reason or "")
    assert run_git(repo, "rev-parse", "main") == ann_done.landed_commit
    assert not (repo / "tests" / "test_more.py").exists()


def test_a_branch_red_on_its_own_never_reaches_main(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("broken", {"calc.py": CALC.replace("a + b", "a - b")})
    base = run_git(repo, "rev-parse", "main")
    enqueue(database, str(repo), "broken", "main", requested_by="ann")
    [done] = Lander(database).process(str(repo))
    assert done.status == "failed" and "test_add" in (done.reason or "")
    assert run_git(repo, "rev-parse", "main") == base


def test_a_branch_deleted_after_queueing_is_an_error_entry_not_a_crash(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("gone", {"x.py": "X = 1\n"})
    enqueue(database, str(repo), "gone", "main", requested_by="ann")
    run_git(repo, "branch", "-D", "gone")
    [done] = Lander(database).process(str(repo))
    assert done.status == "error" and "gone does not exist" in (done.reason or "")


@pytest.mark.parametrize("name", ["nowhere", "--upload-pack=evil", "a..b", "main~1"])
def test_a_branch_that_is_not_there_is_refused_when_queued(
    database: Database, repo: Path, name: str
) -> None:
    with pytest.raises(LandingError) as refused:
        enqueue(database, str(repo), name, "main", requested_by="ann")
    assert refused.value.status == 404 and "there is no branch" in refused.value.message
    assert entries(database, str(repo)) == []


def test_a_folder_that_is_not_a_repository_is_refused(database: Database, tmp_path: Path) -> None:
    with pytest.raises(LandingError, match="not a git repository"):
        enqueue(database, str(tmp_path), "main", "main", requested_by="ann")


def test_an_entry_a_crashed_lander_left_is_landed_by_the_next(
    database: Database, repo: Path, branch: BranchMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    branch("feature", {"x.py": "X = 1\n"})
    enqueue(database, str(repo), "feature", "main", requested_by="ann")

    def crash(*args: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Lander, "land", crash)
        with pytest.raises(KeyboardInterrupt):
            Lander(database).process(str(repo))
    [left] = entries(database, str(repo))
    assert left.status == "error" and "crashed" in (left.reason or "")
    # A lander killed outright leaves its entry `landing`; the next lander starts it over.
    from orchestra.landing import queue

    queue.finish(database, left.id, "landing")
    [done] = Lander(database).process(str(repo))
    assert done.id == left.id and done.status == "landed"


def test_a_branch_already_waiting_is_refused(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("twice", {"x.py": "X = 1\n"})
    enqueue(database, str(repo), "twice", "main", requested_by="ann")
    with pytest.raises(LandingError) as refused:
        enqueue(database, str(repo), "twice", "main", requested_by="ann")
    assert refused.value.status == 409


def test_concurrent_landers_never_fast_forward_at_once(
    database: Database, repo: Path, branch: BranchMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"feature-{i}" for i in range(3)]
    for name in names:
        branch(name, {f"{name}.py": f"NAME = {name!r}\n"})
        enqueue(database, str(repo), name, "main", requested_by="ann")
    inside = 0
    most = 0
    guard = threading.Lock()
    real = lander.fast_forward

    def watched(*args: Any) -> str | None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        try:
            return real(*args)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(lander, "fast_forward", watched)
    start = threading.Barrier(3)
    results: list[list[Any]] = []

    def work() -> None:
        start.wait()
        results.append(Lander(database).process(str(repo)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    landed = [e.branch for result in results for e in result]
    assert sorted(landed) == names  # each entry landed exactly once, by one lander
    assert most == 1
    assert len(_log(repo)) == 4
    assert all(e.status == "landed" for e in entries(database, str(repo)))


def test_a_lander_whose_lease_was_taken_over_stops_after_its_entry(
    database: Database, repo: Path, branch: BranchMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestra.landing import acquire, queue
    from orchestra.store.tables.landing import LandingLockRow

    for name in ("slow", "next"):
        branch(name, {f"{name}.py": "X = 1\n"})
        enqueue(database, str(repo), name, "main", requested_by="ann")
    real = Lander.land

    def long_land(self: Lander, entry: Any) -> Any:
        with database.session() as session:  # the lease runs out while the tests run ...
            lock = session.get(LandingLockRow, str(repo.resolve()))
            assert lock is not None
            lock.acquired_at = lock.acquired_at.replace(year=2000)
        assert acquire(database, str(repo), "other")  # ... and another lander takes over
        return real(self, entry)

    monkeypatch.setattr(Lander, "land", long_land)
    done = Lander(database).process(str(repo))
    assert [e.branch for e in done] == ["slow"]
    assert [e.status for e in entries(database, str(repo))] == ["landed", "queued"]
    queue.release(database, str(repo), "other")


def test_a_run_is_found_by_a_unique_prefix_or_refused_with_close_ids(
    database: Database, repo: Path
) -> None:
    from datetime import UTC, datetime

    from orchestra.landing import find_run, target_branch
    from orchestra.store.tables.engine import RunRow

    now = datetime.now(UTC)
    with database.session() as session:
        for run_id in ("run-7f3a9c", "run-7f3b00", "run-c4d2"):
            session.add(
                RunRow(
                    id=run_id,
                    task="t",
                    repo_path=str(repo),
                    status="succeeded",
                    created_at=now,
                    updated_at=now,
                )
            )
    assert find_run(database, "run-7f3a9c") == "run-7f3a9c"
    assert find_run(database, "run-c") == "run-c4d2"
    with pytest.raises(LandingError, match="more than one run"):
        find_run(database, "run-7f3")
    with pytest.raises(LandingError) as unknown:
        find_run(database, "run-7f3a9d")
    assert unknown.value.status == 404 and "run-7f3a9c" in (unknown.value.hint or "")
    assert target_branch(repo, "release") == "release"
    assert target_branch(repo, None) == "main"  # the checkout's branch


def test_queueing_a_run_again_finds_its_waiting_entry(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    """What the landing step of ``engine.land_on_success`` does when it is replayed after a
    crash: the run's waiting entry, not a second one, nor the 409 of ``enqueue``."""
    branch("orchestra/r1", {"mul.py": "def mul(a, b):\n    return a * b\n"})
    first = queue_run(database, "r1", str(repo), "orchestra/r1", "main", requested_by="x")
    again = queue_run(database, "r1", str(repo), "orchestra/r1", "main", requested_by="x")
    assert again.id == first.id and len(entries(database, str(repo))) == 1
    with pytest.raises(LandingError, match="already in the queue"):
        enqueue(database, str(repo), "orchestra/r1", "main", requested_by="x", run_id="r1")
    (done,) = Lander(database).process(str(repo))
    assert done.status == "landed"
    # Once landed it no longer waits: a run queued again (say, after main was reset) is.
    assert (
        queue_run(database, "r1", str(repo), "orchestra/r1", "main", requested_by="x").id
        != first.id
    )
