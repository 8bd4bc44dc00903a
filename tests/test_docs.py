"""The docs cannot drift from the tree: the architecture page names exactly the package's modules in layers that
the imports follow, and every relative link of the README and docs/ leads to a file (and heading) that exists."""

import ast
import re
from pathlib import Path

from test_layout import imported_names

from conftest import ROOT

PACKAGE = ROOT / "ltx2gen"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PAGES = [ROOT / "README.md", ROOT / "PROMPTING_GUIDE.md", *sorted((ROOT / "docs").glob("*.md"))]


def modules_in_layout_table(text: str) -> set[str]:
    """The `.py` files the module column of the "How the code is laid out" table names, relative to ltx2gen/."""
    table = text.split("## How the code is laid out", 1)[1]
    names = set()
    for line in table.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 3:
            names.update(re.findall(r"`([\w/]+\.py)`", cells[2]))
    return names


def package_modules() -> set[str]:
    """Every module of the package, a package's `__init__.py` too where it holds more than its docstring."""
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
            if path.name != "__init__.py" or len(ast.parse(path.read_text()).body) > 1}


def layers_in_layout_table(text: str) -> dict[str, int]:
    """Each module the table names, with its layer's place from the top (0): a row without a layer is in the layer
    of the row above it."""
    table = text.split("## How the code is laid out", 1)[1]
    layer, layers = -1, {}
    for line in table.splitlines():
        cells = line.split("|")
        if not line.startswith("|") or len(cells) <= 3 or cells[1].strip() == "layer" or set(cells[1]) <= {"-"}:
            continue
        layer += bool(cells[1].strip())
        layers.update(dict.fromkeys(re.findall(r"`([\w/]+\.py)`", cells[2]), layer))
    return layers


def imported_modules(path: Path) -> set[str]:
    """The package's modules `path` imports, at its top or inside a function (`test_layout.imported_names`), relative
    to ltx2gen/."""
    found = set()
    for name in imported_names(path.read_text()):
        package, _, relative = name.partition(".")
        relative = relative.replace(".", "/")
        if package == "ltx2gen" and relative:
            found.update(module for module in (f"{relative}.py", f"{relative}/__init__.py")
                         if (PACKAGE / module).is_file())
    return found


def imports_up(layers: dict[str, int]) -> list[str]:
    return [f"{module} imports {other}" for module, layer in layers.items() if (PACKAGE / module).is_file()
            for other in sorted(imported_modules(PACKAGE / module)) if layers.get(other, layer) < layer]


def test_the_layout_table_names_every_module_of_the_package_and_no_other():
    named = modules_in_layout_table(ARCHITECTURE.read_text())
    missing, stale = package_modules() - named, named - package_modules()
    assert not missing, f"docs/architecture.md's layout table leaves out {sorted(missing)}: add a row for each"
    assert not stale, f"docs/architecture.md's layout table names modules that do not exist: {sorted(stale)}"


def test_the_table_check_sees_a_module_left_out():
    table = "## How the code is laid out\n| layer | module | what |\n|---|---|---|\n| run | `clip.py`, `x/y.py` | z |\n"
    assert modules_in_layout_table(table) == {"clip.py", "x/y.py"}


def test_imports_point_down_the_table_s_layers():
    assert not imports_up(layers_in_layout_table(ARCHITECTURE.read_text())), (
        "a module imports one of a layer above its own in docs/architecture.md's table: move the import, or the row")


def test_the_layer_check_sees_an_import_up():
    table = ("## How the code is laid out\n| layer | module | what |\n|---|---|---|\n| run | `clip.py` | a |\n"
             "| | `plan.py` | b |\n| foundation | `files.py` | c |\n")
    assert layers_in_layout_table(table) == {"clip.py": 0, "plan.py": 0, "files.py": 1}
    assert imports_up({"clip.py": 1, "plan.py": 0}) == ["clip.py imports plan.py"]


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def relative_links(page: Path) -> list[tuple[str, str]]:
    """(target, anchor) of every Markdown link and image of `page` that is not a URL, outside code blocks."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("    "))
    links = re.findall(r"\]\(([^)\s#]*)(?:#([^)\s]*))?\)", text)
    return [(target, anchor) for target, anchor in links if not re.match(r"[a-z]+:", target)]


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in PAGES:
        for target, anchor in relative_links(page):
            path = (page.parent / target) if target else page
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and path.suffix == ".md":
                anchors = {heading_anchor(line.lstrip("#")) for line in path.read_text().splitlines()
                           if line.startswith("#")}
                if anchor not in anchors:
                    broken.append(f"{page.relative_to(ROOT)}: {target}#{anchor}")
    assert not broken, "broken links: " + ", ".join(broken)


def test_the_readme_links_every_page_of_docs():
    readme = {target for target, _ in relative_links(ROOT / "README.md")}
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert pages <= readme, f"README.md links none of {sorted(pages - readme)}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_bytes()) < 20_000, "README.md is for the quick path; move detail to docs/"
