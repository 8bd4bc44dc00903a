"""The package's shape: imports point down (no cycles), validation is cheap, functions take few parameters."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, assert_linter_passes

SCRIPTS = ("generate.py", "decode_latents.py")


def module_name(path: Path) -> str:
    """`ltx2gen/testing/build.py` -> `ltx2gen.testing.build`; a package's `__init__.py` is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files() -> dict[str, Path]:
    """Every module of the package, in its subpackages too, and the scripts."""
    files = {module_name(path): path for path in sorted((ROOT / "ltx2gen").rglob("*.py"))}
    del files["ltx2gen"]
    files.update({Path(script).stem: ROOT / script for script in SCRIPTS})
    return files


def imported_names(source: str) -> set[str]:
    """Every module name an import statement of `source` names, wherever it is (inside functions too): for
    `from a.b import c`, both `a.b` and `a.b.c` (c may be a module)."""
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of the project's own modules, wherever in the file they are (inside functions too)."""
    files = module_files()
    return {module: {name for name in imported_names(path.read_text()) if name in files and name != module}
            for module, path in files.items()}


def cycle_through(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state:
                found = visit(imported, path + [imported])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_module_imports_one_that_imports_it_back():
    cycle = cycle_through(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


TEST_MODELS = "ltx2gen.testing"  # what writes seeded test models: above the product, never imported by it


def imports_of_test_models(imported: set[str]) -> set[str]:
    return {name for name in imported if name == TEST_MODELS or name.startswith(TEST_MODELS + ".")}


def test_no_runtime_module_imports_the_test_model_writers():
    """The product loads models; `ltx2gen.testing` writes test models for tests and benchmarks. A runtime module
    (any outside ltx2gen/testing/, and the scripts) that imports it, even inside a function, puts the writers in
    the load path."""
    offenders = {module: sorted(imports_of_test_models(imported_names(path.read_text())))
                 for module, path in module_files().items() if not module.startswith(TEST_MODELS)}
    assert not {module: names for module, names in offenders.items() if names}


@pytest.mark.parametrize("source", [
    "from ltx2gen.testing.synthetic import write_model",
    "def load():\n    from ltx2gen.testing import published\n",
    "import ltx2gen.testing.build as build",
    "from ltx2gen import testing",
])
def test_the_layer_check_finds_an_import_of_the_test_model_writers(source):
    assert imports_of_test_models(imported_names(source))


def test_validating_every_kind_of_flag_imports_neither_torch_nor_diffusers(tmp_path):
    """The flags of every feature (NAG, LoRA, two-stage, offload, FP8, decode options) are checked by the pure
    configuration layer; torch loads only once they are valid."""
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    model = tmp_path / "model"
    model.mkdir()
    script = f"""
import sys
from ltx2gen.config import GenerateConfig, build_parser
flags = ["--prompt", "a fox", "--model", {str(model)!r}, "--nag-scale", "8", "--lora", {str(lora)!r}, "0.5",
         "--pipeline", "two-stage", "--width", "128", "--height", "128", "--num-frames", "17", "--fp8", "weight",
         "--offload", "group", "--vae-chunk-frames", "16", "--output", {str(tmp_path / "v.mp4")!r}]
GenerateConfig.from_args(build_parser().parse_args(flags))
import generate, decode_latents
decode_latents.build_parser()
print(sorted(name for name in ("torch", "diffusers", "transformers") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_no_function_takes_more_than_eight_parameters():
    too_many = []
    for module, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
                count = len(names) - (names[:1] in (["self"], ["cls"]))
                if count > 8:
                    too_many.append(f"{module}.{node.name}: {count}")
    assert not too_many


def test_python_code_passes_ruff():
    assert_linter_passes("ruff", "check", ".")
