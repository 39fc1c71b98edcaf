"""The folders show the data path, and imports run one way along it: no stage imports a later one,
and production code reaches the sandbox only where it is asked for."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["pipelines.client", "pipelines.config", "pipelines.landing", "pipelines.extract", "pipelines.warehouse",
          "pipelines.defs", "pipelines.app", "pipelines.definitions"]
"""In the order the data flows; a module may import its own stage and earlier ones."""
SANDBOX_ALLOWED = {"pipelines/defs/resources.py", "pipelines/app/cli.py"}
"""The explicit switch (WHITESPACE_SANDBOX=1) and the commands that serve or sync the sandbox."""


def stage_of(module: str) -> int | None:
    for n, stage in enumerate(STAGES):
        if module == stage or module.startswith(stage + "."):
            return n
    return None


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / "pipelines").rglob("*.py")}


def test_every_module_belongs_to_a_stage() -> None:
    assert [m for m in modules() if m != "pipelines" and stage_of(m) is None] == []


def test_no_stage_imports_a_later_one() -> None:
    wrong = []
    for module, path in modules().items():
        own = stage_of(module)
        for target in imports(path):
            theirs = stage_of(target)
            if own is not None and theirs is not None and theirs > own:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_only_the_explicit_switch_and_the_commands_reach_the_sandbox() -> None:
    reaching = {p.relative_to(ROOT).as_posix() for p in modules().values()
                if any(t == "sandbox" or t.startswith("sandbox.") for t in imports(p))}
    assert reaching <= SANDBOX_ALLOWED, reaching


def test_the_client_knows_nothing_of_dagster_and_only_config_reads_the_environment() -> None:
    for module, path in modules().items():
        text = path.read_text()
        if module.startswith(("pipelines.client", "pipelines.landing", "pipelines.extract", "pipelines.warehouse")):
            assert not any(t == "dagster" or t.startswith("dagster.") for t in imports(path)), module
        if module != "pipelines.config":
            assert "os.environ" not in text and "getenv" not in text, module
