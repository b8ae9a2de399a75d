"""Regenerate k8s-<version>-strict.json: the strict schemas of the kinds deploy/k8s uses.

Pruned from the ``kubernetes-validate`` package (Apache-2.0; generated from the
Kubernetes OpenAPI), with descriptions dropped, so the manifest tests validate offline
even where that package is not installed::

    .venv/bin/pip install 'kubernetes-validate>=1.30,<2'
    .venv/bin/python tests/deploy/schemas/make_k8s_bundle.py 1.33.0
"""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

KINDS = {
    "v1/Namespace": "namespace-v1",
    "v1/ConfigMap": "configmap-v1",
    "v1/Service": "service-v1",
    "v1/PersistentVolumeClaim": "persistentvolumeclaim-v1",
    "apps/v1/Deployment": "deployment-apps-v1",
    "apps/v1/StatefulSet": "statefulset-apps-v1",
    "policy/v1/PodDisruptionBudget": "poddisruptionbudget-policy-v1",
    "autoscaling/v2/HorizontalPodAutoscaler": "horizontalpodautoscaler-autoscaling-v2",
    "batch/v1/CronJob": "cronjob-batch-v1",
}


def _clean(node: Any, refs: set[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "description":
                continue
            if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                name = value.split("#/$defs/", 1)[1]
                refs.add(name)
                out[key] = f"#/$defs/{name}"
            else:
                out[key] = _clean(value, refs)
        return out
    if isinstance(node, list):
        return [_clean(v, refs) for v in node]
    return node


def main(version: str) -> None:
    root = (
        files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
    )
    defs = json.loads((root / "_definitions.json").read_text())["$defs"]
    refs: set[str] = set()
    kinds = {
        k: _clean(json.loads((root / f"{f}.json").read_text()), refs)
        for k, f in KINDS.items()
    }
    bundle_defs: dict[str, Any] = {}
    todo = list(refs)
    while todo:
        name = todo.pop()
        if name in bundle_defs:
            continue
        found: set[str] = set()
        bundle_defs[name] = _clean(defs[name], found)
        todo.extend(found - bundle_defs.keys())
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "kubernetes_version": version,
        "kinds": kinds,
        "$defs": dict(sorted(bundle_defs.items())),
    }
    path = Path(__file__).with_name(f"k8s-{version}-strict.json")
    path.write_text(json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.write(f"{path}: {len(kinds)} kinds, {len(bundle_defs)} definitions\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "1.33.0")
