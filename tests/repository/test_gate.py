"""The red and green gates on fixture repositories, judged from real pytest runs."""

from __future__ import annotations

from pathlib import Path

from orchestra.repository import detect_environment
from orchestra.repository.gate import green_gate, implementation_files, red_gate
from orchestra.repository.runner import collect_test_ids
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits
from tests.repository.fixtures import git

LIMITS = CommandLimits(timeout_s=120)
MANY = "".join(f"def test_existing_{i}():\n    assert add({i}, 0) == {i}\n\n\n" for i in range(300))


def _repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str, frozenset[str]]:
    repo = create_repository(tmp_path / "r", files)
    env = detect_environment(repo, environ={})
    collected = collect_test_ids(env, repo, home=tmp_path / "h", limits=LIMITS)
    assert collected is not None and collected.ok
    return repo, git(repo, "rev-parse", "HEAD").strip(), collected.ids


def _red(tmp_path: Path, repo: Path, base: str, ids: frozenset[str], planned: list[str]):  # type: ignore[no-untyped-def]
    env = detect_environment(repo, environ={})
    return red_gate(
        env,
        repo,
        base_commit=base,
        base_ids=ids,
        planned_files=planned,
        home=tmp_path / "h",
        limits=LIMITS,
        report_dir=tmp_path / "reports",
    )


def test_three_tests_added_to_a_file_of_three_hundred_pass_the_red_gate(tmp_path: Path) -> None:
    repo, base, ids = _repo(
        tmp_path,
        {
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "import calc\nfrom calc import add\n\n\n" + MANY,
        },
    )
    with (repo / "tests/test_calc.py").open("a") as handle:
        handle.write(
            "def test_mul():\n    assert calc.mul(2, 3) == 6\n\n\n"
            "def test_mul_zero():\n    assert calc.mul(0, 3) == 0\n\n\n"
            "def test_add_many():\n    assert add(1, 2, 3) == 6\n"
        )
    result = _red(tmp_path, repo, base, ids, ["calc.py"])
    assert result.verdict.accepted, result.verdict.reason
    assert len(result.verdict.new_failing) == 3
    assert result.report.counts["passed"] == 300
    assert len(result.verdict.reason) < 600


def test_an_unchanged_test_broken_by_the_red_phase_is_named(tmp_path: Path) -> None:
    repo, base, ids = _repo(
        tmp_path,
        {
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "import calc\nfrom calc import add\n\n\n" + MANY,
        },
    )
    text = (repo / "tests/test_calc.py").read_text()
    text = text.replace("from calc import add\n", "from calc import add\nadd = lambda a, b: 0\n")
    (repo / "tests/test_calc.py").write_text(
        text + "def test_mul():\n    assert calc.mul(2, 3) == 6\n"
    )
    result = _red(tmp_path, repo, base, ids, ["calc.py"])
    assert not result.verdict.accepted
    assert "existing tests fail" in result.verdict.reason
    assert "and 294 more" in result.verdict.reason  # 299 broken: 5 named, the rest counted
    assert len(result.verdict.reason) < 2400


def test_a_helper_added_to_tests_init_is_not_implementation(tmp_path: Path) -> None:
    repo, base, ids = _repo(
        tmp_path,
        {
            "shop/__init__.py": "",
            "shop/cart.py": "class Cart:\n    def __init__(self):\n        self.items = []\n",
            "tests/__init__.py": "",
            "tests/test_cart.py": (
                "from shop.cart import Cart\n\n\ndef test_empty():\n    assert Cart().items == []\n"
            ),
        },
    )
    (repo / "tests/__init__.py").write_text(
        "from shop.cart import Cart\n\n\ndef cart_with(*names):\n"
        "    cart = Cart()\n    for n in names:\n        cart.add(n)\n    return cart\n"
    )
    (repo / "tests/test_total.py").write_text(
        "from tests import cart_with\n\n\ndef test_count():\n"
        "    assert cart_with('a', 'b').count() == 2\n"
    )
    planned = ["shop/cart.py", "tests/__init__.py"]
    assert implementation_files(planned) == ["shop/cart.py"]
    result = _red(tmp_path, repo, base, ids, planned)
    assert result.verdict.accepted, result.verdict.reason
    assert result.verdict.new_failing == ("tests/test_total.py::test_count",)


def test_name_error_file_is_refused_although_another_file_has_an_import_error(
    tmp_path: Path,
) -> None:
    repo, base, ids = _repo(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "def f():\n    return 1\n",
            "tests/test_f.py": ("from pkg.mod import f\n\n\ndef test_f():\n    assert f() == 1\n"),
        },
    )
    (repo / "tests/test_new.py").write_text(
        "from pkg.mod import newfn\n\n\ndef test_newfn():\n    assert newfn() == 2\n"
    )
    (repo / "tests/test_typo.py").write_text(
        "from pkg import mod\n\nx = undefined_helper()\n\n\ndef test_g():\n    assert mod.g()\n"
    )
    result = _red(tmp_path, repo, base, ids, ["pkg/mod.py"])
    assert not result.verdict.accepted
    wrong = next(p for p in result.verdict.problems if p.kind == "wrong_reason")
    assert wrong.ids == ("tests/test_typo.py::test_g",)
    assert "NameError" in result.verdict.reason
    assert "test_newfn" not in result.verdict.reason


def test_green_gate(tmp_path: Path) -> None:
    repo, _, _ = _repo(
        tmp_path,
        {
            "calc.py": "def add(a, b):\n    return a - b\n",
            "tests/test_c.py": (
                "from calc import add\n\n\ndef test_add():\n    assert add(1, 1) == 2\n"
            ),
        },
    )
    env = detect_environment(repo, environ={})
    kwargs = {"home": tmp_path / "h", "limits": LIMITS, "report_dir": tmp_path / "rep"}
    failing = green_gate(env, repo, **kwargs)  # type: ignore[arg-type]
    assert not failing.verdict.accepted
    assert "tests/test_c.py::test_add" in failing.verdict.reason
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    assert green_gate(env, repo, **kwargs).verdict.accepted  # type: ignore[arg-type]


def test_new_tests_of_a_file_that_cannot_import_yet_count_as_errors(tmp_path: Path) -> None:
    repo, base, ids = _repo(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "def f():\n    return 1\n",
            "tests/test_f.py": ("from pkg.mod import f\n\n\ndef test_f():\n    assert f() == 1\n"),
        },
    )
    (repo / "tests/test_new.py").write_text(
        "from pkg.mod import g\n\n\ndef test_g():\n    assert g()\n\n\ndef test_g2():\n"
        "    assert g()\n"
    )
    result = _red(tmp_path, repo, base, ids, ["pkg/mod.py"])
    assert result.verdict.accepted, result.verdict.reason
    assert result.new_case_counts() == {"passed": 0, "failed": 0, "error": 2, "skipped": 0}
