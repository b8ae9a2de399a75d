"""deploy/: the Kubernetes manifests, the compose file and the image inputs are valid.

Schemas: ``schemas/k8s-1.33.0-strict.json`` (the strict Kubernetes schemas of the kinds we
use, pruned from ``kubernetes-validate`` by ``schemas/make_k8s_bundle.py``) and
``schemas/compose-spec.json`` (the compose specification's schema, Apache-2.0) are
checked with ``jsonschema``; when ``kubernetes-validate`` is installed the manifests are
also checked against several Kubernetes versions with it.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
BESSFLEET_IMAGE = re.compile(r"^bessfleet:")


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append(
                    (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
                )
    return docs


K8S_DOCS = _k8s_docs()


def _pod_template(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        template: dict[str, Any] = doc["spec"]["template"]
        return template
    if doc["kind"] == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        return template
    return None


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    template = _pod_template(doc)
    return None if template is None else template["spec"]


WORKLOADS = [(n, d) for n, d in K8S_DOCS if _pod_spec(d) is not None]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), K8S_DOCS, ids=[n for n, _ in K8S_DOCS])
def test_k8s_manifest_passes_strict_schema_when_validated(
    name: str, doc: dict[str, Any], version: str
) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate"
    )
    kv.validate(doc, version, strict=True)


def _bundled_validator(doc: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    import json

    bundle = json.loads((SCHEMAS / "k8s-1.33.0-strict.json").read_text())
    key = f"{doc['apiVersion']}/{doc['kind']}"
    assert key in bundle["kinds"], f"{key}: add it to make_k8s_bundle.py and regenerate"
    schema = {**bundle["kinds"][key], "$defs": bundle["$defs"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("name", "doc"), K8S_DOCS, ids=[n for n, _ in K8S_DOCS])
def test_k8s_manifest_passes_bundled_strict_schema_when_validated(
    name: str, doc: dict[str, Any]
) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _bundled_validator(doc).iter_errors(doc)
    ]
    assert errors == [], name


def test_bundled_schema_rejects_a_manifest_when_field_unknown_or_mistyped() -> None:
    doc = next(d for _, d in K8S_DOCS if d["kind"] == "StatefulSet")
    validator = _bundled_validator(doc)
    assert not validator.is_valid({**doc, "spec": {**doc["spec"], "replicaz": 2}})
    assert not validator.is_valid({**doc, "spec": {**doc["spec"], "replicas": "two"}})


def test_k8s_schema_check_rejects_a_manifest_when_field_unknown() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate"
    )
    doc = next(d for _, d in K8S_DOCS if d["kind"] == "Deployment")
    broken = {**doc, "spec": {**doc["spec"], "replicaz": 2}}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_when_read() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_k8s_resources_live_in_one_namespace_when_namespaced() -> None:
    for name, doc in K8S_DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "bessfleet", name


@pytest.mark.parametrize(("name", "doc"), WORKLOADS, ids=[n for n, _ in WORKLOADS])
def test_k8s_pods_run_non_root_read_only_when_bessfleet_image(
    name: str, doc: dict[str, Any]
) -> None:
    spec = _pod_spec(doc)
    assert spec is not None
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    for container in spec.get("initContainers", []) + spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        if BESSFLEET_IMAGE.match(container["image"]):
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, (
                f"{name}: {container['name']} needs a writable /tmp"
            )


def test_k8s_ingest_uses_pod_name_as_client_id_when_statefulset() -> None:
    ingest = next(
        d
        for _, d in K8S_DOCS
        if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "ingest"
    )
    env = {
        e["name"]: e for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (
        env["BESSFLEET_INGEST_CLIENT_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.name"
    )
    assert ingest["spec"]["replicas"] >= 2


def test_k8s_secrets_are_referenced_not_embedded_when_scanned() -> None:
    for name, doc in K8S_DOCS:
        assert doc["kind"] != "Secret", f"{name}: Secrets are created by the runbook"
        text = yaml.safe_dump(doc)
        assert not re.search(r"postgresql\+psycopg://[^@/]*:[^@/]*@", text), name
        assert not re.search(r"mqtts?://[^@/]*:[^@/]*@", text), name


def test_k8s_services_select_existing_pods_when_defined() -> None:
    pod_labels = [
        t["metadata"]["labels"] for _, d in K8S_DOCS if (t := _pod_template(d))
    ]
    for name, doc in K8S_DOCS:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
            assert any(selector.items() <= labels.items() for labels in pod_labels), (
                name
            )


# --- compose --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_passes_compose_spec_schema_when_validated(
    compose: dict[str, Any],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import json

    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.validate(compose, schema)
    broken = {**compose, "services": {"x": {"image": "a", "restart": 5}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_compose_runs_every_role_of_the_issue_when_read(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    commands = {name: svc.get("command", [None])[0] for name, svc in services.items()}
    assert {"postgres", "mosquitto"} <= services.keys()
    assert commands["api"] == "api"
    assert commands["scheduler"] == "scheduler"
    assert commands["dask-scheduler"] == "dask-scheduler"
    assert sorted(n for n, c in commands.items() if c == "ingest") == [
        "ingest-1",
        "ingest-2",
    ]
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    assert "8883:8883" in services["mosquitto"]["ports"]


def test_compose_bessfleet_services_run_non_root_when_read(
    compose: dict[str, Any],
) -> None:
    for name, svc in compose["services"].items():
        if str(svc.get("image", "")).startswith("${BESSFLEET_IMAGE"):
            assert svc["user"] == "10001:10001", name
            assert svc["read_only"] is True, name
            assert "db-password" in svc["secrets"], name


def test_compose_ingest_workers_have_distinct_client_ids_when_rendered(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    from fleet.deploy import render
    from fleet.fleetfile import load_fleet

    render(load_fleet(DEPLOY / "examples" / "fleet-small.yaml"), tmp_path)
    ids = set()
    for name, svc in compose["services"].items():
        for env_file in svc.get("env_file", []):
            rel = Path(env_file).relative_to("generated")
            assert (tmp_path / rel).exists(), f"{name}: {env_file} is not rendered"
            if name.startswith("ingest-") and rel.name.startswith("ingest-"):
                text = (tmp_path / rel).read_text()
                ids.add(re.search(r"BESSFLEET_INGEST_CLIENT_ID=(\S+)", text).group(1))  # type: ignore[union-attr]
    assert len(ids) == 2


# --- image inputs ---------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_builds_multi_stage_non_root_from_python311_slim_when_parsed() -> (
    None
):
    instructions = _dockerfile()
    args = dict(a.split("=", 1) for w, a in instructions if w == "ARG" and "=" in a)
    froms = [a for w, a in instructions if w == "FROM"]
    assert len(froms) >= 2
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    final = instructions[
        max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :
    ]
    users = [a for w, a in final if w == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert any(w == "HEALTHCHECK" and "healthcheck" in a for w, a in final)
    assert any(w == "ENTRYPOINT" and "docker-entrypoint.sh" in a for w, a in final)
    runs = " ".join(a for w, a in instructions if w == "RUN")
    assert "-c constraints.txt" in runs


def test_dockerfile_copies_only_paths_that_exist_and_are_not_ignored_when_parsed() -> (
    None
):
    ignored = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, args in _dockerfile():
        if word != "COPY" or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: missing"
            assert not any(fnmatch.fnmatch(source, pat) for pat in ignored), source


def test_compose_secret_paths_match_rendered_env_when_rendered(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    from fleet.deploy import render
    from fleet.fleetfile import load_fleet

    render(load_fleet(DEPLOY / "examples" / "fleet-small.yaml"), tmp_path)
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "env" / "bessfleet.env").read_text().splitlines()
    )
    mounted = {f"/run/secrets/{name}" for name in compose["secrets"]}
    assert env["BESSFLEET_DB_PASSWORD_FILE"] in mounted
    assert env["SSL_CERT_FILE"] in mounted
    config = next(d for _, d in K8S_DOCS if d["kind"] == "ConfigMap")["data"]
    assert config["BESSFLEET_DB_PASSWORD_FILE"].startswith("/run/secrets/db-password/")
