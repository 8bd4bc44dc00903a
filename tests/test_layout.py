"""The package's shape: imports point down (no cycles), validation is cheap, functions take few parameters."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, assert_linter_passes

SCRIPTS = ("generate.py", "decode_latents.py")


def module_files() -> dict[str, Path]:
    files = {f"ltx2gen.{path.stem}": path for path in (ROOT / "ltx2gen").glob("*.py") if path.stem != "__init__"}
    files.update({Path(script).stem: ROOT / script for script in SCRIPTS})
    return files


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of the project's own modules, wherever in the file they are (inside functions too)."""
    files = module_files()
    graph = {}
    for module, path in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


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
