"""Chunking: Python by ast, Markdown/RST by headings, other files by balanced blocks."""

from __future__ import annotations

from textwrap import dedent

from orchestra.knowledge.chunking import chunk_blocks, chunk_file, chunk_markdown, chunk_rst

PY = dedent(
    '''\
    """Module docstring."""
    import os

    LIMIT = 3


    @decorator
    def top(a, b):
        """Add."""
        return a + b


    class Shape:
        """A shape."""

        sides = 0

        def area(self):
            return 0

        async def draw(self, canvas):
            def helper():
                return 1
            return helper()
    '''
)


def test_python_chunks_have_qualified_names_and_line_ranges() -> None:
    chunks = chunk_file("pkg/shapes.py", PY)
    got = [(c.title, c.start_line, c.end_line) for c in chunks]
    assert got == [
        ("pkg/shapes.py::<module>", 1, 6),
        ("pkg/shapes.py::top", 7, 10),
        ("pkg/shapes.py::Shape (class)", 13, 17),
        ("pkg/shapes.py::Shape.area", 18, 19),
        ("pkg/shapes.py::Shape.draw", 21, 24),
    ]
    assert chunks[1].text.startswith("@decorator\ndef top")
    assert "def helper" in chunks[4].text  # nested functions stay with their parent
    assert all(c.kind == "code" for c in chunks)


def test_long_functions_are_windowed() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(250))
    chunks = chunk_file("big.py", f"def big():\n{body}\n", max_lines=100)
    assert [c.title for c in chunks] == [
        "big.py::big (part 1)",
        "big.py::big (part 2)",
        "big.py::big (part 3)",
    ]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 100), (101, 200), (201, 251)]


def test_unparsable_python_falls_back() -> None:
    chunks = chunk_file("broken.py", "def broken(:\n    pass\n")
    assert chunks and chunks[0].title == "broken.py:1"


def test_markdown_by_headings_ignores_code_fences() -> None:
    md = (
        "Intro line.\n\n# Guide\nText.\n## Install\n"
        "```sh\n# not a heading\npip install x\n```\n## Use\nRun it.\n"
    )
    chunks = chunk_markdown("README.md", md)
    assert [(c.title, c.start_line, c.end_line) for c in chunks] == [
        ("README.md", 1, 2),
        ("README.md#Guide", 3, 4),
        ("README.md#Guide > Install", 5, 9),
        ("README.md#Guide > Use", 10, 11),
    ]
    assert all(c.kind == "doc" for c in chunks)


def test_rst_by_underlined_titles() -> None:
    rst = "=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\nBody.\n"
    chunks = chunk_rst("doc.rst", rst)
    assert [c.title for c in chunks] == ["doc.rst#Title", "doc.rst#Title > Section"]
    assert chunks[1].start_line == 7


def test_other_languages_cut_only_where_braces_balance() -> None:
    fn = "function f() {\n" + "\n".join(f"  let a{i} = {i};\n" for i in range(10)) + "}\n"
    js = "\n".join([fn, fn, fn])
    chunks = chunk_blocks("app.js", js, max_lines=40)
    for c in chunks:
        assert c.text.count("{") == c.text.count("}")
    assert chunks[0].start_line == 1
    assert chunks[-1].end_line == len(js.splitlines())


def test_python_chunks_carry_a_symbol_summary_line() -> None:
    chunks = {c.title: c for c in chunk_file("pkg/shapes.py", PY)}
    assert chunks["pkg/shapes.py::top"].summary == "top(a, b) — Add. — in pkg/shapes.py"
    assert chunks["pkg/shapes.py::Shape (class)"].summary == (
        "class Shape — A shape. — in pkg/shapes.py"
    )
    # A method names its class and what the class is for, which its own lines do not say.
    draw = chunks["pkg/shapes.py::Shape.draw"]
    assert draw.summary == "Shape.draw(self, canvas) — in class Shape: A shape."
    assert draw.stored_text.startswith("# Shape.draw(self, canvas)")
    assert draw.stored_text.splitlines()[1].strip().startswith("async def draw")
    assert chunks["pkg/shapes.py::<module>"].summary == ""


def test_every_window_of_a_long_function_repeats_its_summary() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(250))
    text = f'def big(n: int) -> int:\n    """Count up."""\n{body}\n'
    chunks = chunk_file("big.py", text, max_lines=100)
    assert len(chunks) == 3
    assert {c.summary for c in chunks} == {"big(n: int) -> int — Count up. — in big.py"}


def test_other_files_have_no_summary() -> None:
    assert all(not c.summary for c in chunk_file("README.md", "# Title\n\ntext\n"))
    assert all(c.stored_text == c.text for c in chunk_file("app.js", "let a = 1;\nlet b = 2;\n"))
