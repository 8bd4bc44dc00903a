"""The docs cannot drift from the tree: the architecture page names exactly the package's modules, and every
relative link of the README and docs/ leads to a file (and heading) that exists."""

import re
from pathlib import Path

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
    return {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}


def test_the_layout_table_names_every_module_of_the_package_and_no_other():
    named = modules_in_layout_table(ARCHITECTURE.read_text())
    missing, stale = package_modules() - named, named - package_modules()
    assert not missing, f"docs/architecture.md's layout table leaves out {sorted(missing)}: add a row for each"
    assert not stale, f"docs/architecture.md's layout table names modules that do not exist: {sorted(stale)}"


def test_the_table_check_sees_a_module_left_out():
    table = "## How the code is laid out\n| layer | module | what |\n|---|---|---|\n| run | `clip.py`, `x/y.py` | z |\n"
    assert modules_in_layout_table(table) == {"clip.py", "x/y.py"}


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
