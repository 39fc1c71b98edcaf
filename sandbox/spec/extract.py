"""Makes ``openapi-subset.json``: the part of Whitespace's published OpenAPI spec the sandbox answers
for, so that its answers can be validated without the full spec (which this repository does not carry).

    python -m sandbox.spec.extract PATH/TO/openapi.yml

keeps ``openapi``, ``info`` and, without their examples, the operations of ``PATHS`` (with their parameters, request bodies
and responses), and everything those reach through ``$ref`` (component schemas, and the other
operations some of them borrow a schema from), unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

OUT = Path(__file__).with_name("openapi-subset.json")
PATHS = (
    "/api/summary",
    "/api/risks/{riskID}",
    "/api/risks/root/{rootID}",
    "/api/lines/{rootID}/combinedSets",
    "/api/shared/corporate",
    "/api/user/myDetails",
    "/api/version",
    "/api/activities/{rootID}/full",
    "/api/activities/filter",
    "/api/v23.09/data/{riskID}",
    "/api/v23.09/data/{riskID}/tagset/{tagset}",
    "/mireport/prepare",
    "/mireport/fetch",
)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def without_examples(node: Any, in_properties: bool = False) -> Any:
    """The node less its ``example``/``examples`` (a schema-only extract); a property of that name stays."""
    if isinstance(node, dict):
        return {k: without_examples(v, k == "properties") for k, v in node.items()
                if in_properties or k not in ("example", "examples")}
    if isinstance(node, list):
        return [without_examples(v) for v in node]
    return node


def subset(spec: dict) -> dict:
    paths = {p: spec["paths"][p] for p in PATHS if p in spec["paths"]}
    missing = [p for p in PATHS if p not in spec["paths"]]
    if missing:
        raise SystemExit(f"not in the spec: {missing}")
    components: dict[str, dict] = {}
    todo = _refs(paths)
    while todo:
        ref = todo.pop()
        _, section, key, *_ = ref.split("/")  # "#/components/<kind>/<name>" or "#/paths/<path>/..."
        if section == "paths":
            path = unquote(key).replace("~1", "/").replace("~0", "~")
            if path not in paths:
                paths[path] = spec["paths"][path]
                todo |= _refs(paths[path])
            continue
        name = ref.split("/")[3]
        if name in components.setdefault(key, {}):
            continue
        components[key][name] = spec["components"][key][name]
        todo |= _refs(components[key][name])
    return without_examples({"openapi": spec["openapi"], "info": spec["info"], "paths": paths,
                             "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())}})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = yaml.safe_load(Path(argv[0]).read_text())
    OUT.write_text(json.dumps(subset(spec), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
