"""Writes each example script's notebook twin, `examples/NAME.ipynb`: the script's docstring as a
Markdown cell, then one code cell per `# %%` block (the percent format, which jupytext and
editors such as VS Code also read as cells).

Run: `python examples/build_notebooks.py` after editing an example (needs nbformat, in the
`test` extra). `tests/test_examples.py` checks that the notebooks match their scripts and runs
them in a Jupyter kernel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
from nbformat import v4

EXAMPLES = Path(__file__).resolve().parent
SCRIPTS = ("textbook_loop.py", "simple_rnn_shapes.py", "imdb_sentiment.py")
CELL_MARKER = "# %%"


def notebook(script: Path) -> nbformat.NotebookNode:
    """The notebook for `script`: its docstring (first line as the title), then its cells.

    Args:
        script: an example program whose code after the docstring is split by `# %%` lines.

    Returns:
        An nbformat 4 notebook without outputs, with stable cell ids (cell-0, cell-1, ...).
    """
    source = script.read_text(encoding="utf-8")
    module = ast.parse(source)
    title, _, rest = (ast.get_docstring(module) or script.stem).partition("\n")
    code = source.splitlines()[module.body[0].end_lineno :]
    blocks, block = [], []
    for line in code:
        if line.strip() == CELL_MARKER:
            blocks.append(block)
            block = []
        else:
            block.append(line)
    blocks.append(block)
    cells = [v4.new_markdown_cell(f"# {title}\n{rest}".rstrip())]
    cells += [v4.new_code_cell("\n".join(b).strip("\n")) for b in blocks if "".join(b).strip()]
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return v4.new_notebook(
        cells=cells, metadata={"kernelspec": kernel, "language_info": {"name": "python"}}
    )


def notebook_path(script_name: str) -> Path:
    return EXAMPLES / script_name.replace(".py", ".ipynb")


def main() -> None:
    for name in SCRIPTS:
        path = notebook_path(name)
        nbformat.write(notebook(EXAMPLES / name), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
