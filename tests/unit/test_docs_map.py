"""docs/pipeline.md's layout map lists every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT


def mapped_modules(page: str) -> set[str]:
    """The `.py` files the map under `src/transfer/` names, as paths inside the package: an
    entry two spaces deeper than a `folder/` line is inside that folder."""
    block = page.split("## Project layout", 1)[1].split("```", 2)[1]
    modules, folders, inside = set(), [], False
    for line in block.splitlines():
        match = re.match(r"( *)(\S+)", line)
        if not match:
            continue
        depth, name = len(match[1]) // 2, match[2]
        if depth == 0:
            inside = name == "src/transfer/"
            continue
        if not inside:
            continue
        folders = folders[:depth - 1]
        if name.endswith("/"):
            folders.append(name)
        elif name.endswith(".py"):
            modules.add("".join(folders) + name)
    return modules


def package_modules(package: Path) -> set[str]:
    """Every module of the package, but the empty `__init__.py` files of its subpackages."""
    return {str(path.relative_to(package)) for path in package.rglob("*.py")
            if path.stat().st_size or path.parent == package}


def test_the_map_and_the_tree_are_equal():
    """Each module has its line in the map; each line names a module that exists."""
    mapped = mapped_modules((ROOT / "docs/pipeline.md").read_text())
    assert mapped == package_modules(ROOT / "src/transfer")


def test_a_module_missing_from_the_map_is_found(tmp_path):
    """A module added to a copy of the tree, and not to the map, makes the two differ."""
    package = tmp_path / "transfer"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text('"""x"""\n')
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "images.py").write_text('"""x"""\n')
    (package / "data" / "extra.py").write_text('"""x"""\n')
    page = ("## Project layout\n\n```\nsrc/transfer/\n  __init__.py   the package\n  data/\n"
            "    images.py   decoding\ntests/   the tests\n```\n")
    assert package_modules(package) - mapped_modules(page) == {"data/extra.py"}
