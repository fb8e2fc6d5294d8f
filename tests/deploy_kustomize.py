"""A small kustomize, enough for deploy/k8s: the features its kustomizations use and
nothing else (anything else is an error, so a new feature cannot slip by untested).

Supported: `resources` (files and directories), `namespace`, `images` (newName,
newTag), `replicas`, `configMapGenerator` (files, literals; behavior create or merge)
with kustomize's content-hash name suffix, and the name references to generated
ConfigMaps from Deployments (volumes, envFrom, env valueFrom). `helmCharts` is
recognised and left out (it needs Helm and the network). When `kubectl` is on PATH,
tests compare this renderer's output with `kubectl kustomize`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "configMapGenerator",
    "helmCharts",
}


class KustomizeError(ValueError):
    pass


@dataclass
class Generated:
    name: str
    data: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None


def _go_json(value: Any) -> str:
    """Go's json.Marshal of maps of strings: sorted keys, compact, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def configmap_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix for a generated ConfigMap (api/hasher; kustomize 5 hashes
    the ConfigMap before it has a name, so the name is empty)."""
    digest = hashlib.sha256(_go_json({"data": data, "kind": "ConfigMap", "name": ""}).encode()).hexdigest()
    swap = {"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}
    return "".join(swap.get(c, c) for c in digest[:10])


def _load_kustomization(directory: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        path = directory / name
        if path.exists():
            doc = yaml.safe_load(path.read_text()) or {}
            unknown = set(doc) - SUPPORTED
            if unknown:
                raise KustomizeError(f"{path}: unsupported fields {sorted(unknown)}")
            return doc
    raise KustomizeError(f"no kustomization in {directory}")


def _inside(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise KustomizeError(f"security: {path} is not in or below {root}")  # as kustomize says
    return resolved


class Build:
    """The result of one kustomization: resources, and the generators' pre-hash state."""

    def __init__(self, resources: list[dict[str, Any]], generated: dict[str, Generated]) -> None:
        self.resources = resources
        self.generated = generated


def _accumulate(directory: Path) -> Build:
    k = _load_kustomization(directory)
    resources: list[dict[str, Any]] = []
    generated: dict[str, Generated] = {}
    for entry in k.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            child = _accumulate(target)
            resources.extend(child.resources)
            for name, gen in child.generated.items():
                if name in generated:
                    raise KustomizeError(f"ConfigMap {name} generated twice")
                generated[name] = gen
        else:
            resources.extend(
                d for d in yaml.safe_load_all(_inside(directory, directory / entry).read_text()) if d
            )
    for spec in k.get("configMapGenerator", []):
        name = spec["name"]
        behavior = spec.get("behavior", "create")
        data: dict[str, str] = {}
        for item in spec.get("files", []):
            key, _, rel = item.partition("=") if "=" in item else (Path(item).name, "", item)
            data[key] = _inside(directory, directory / rel).read_text()
        for literal in spec.get("literals", []):
            key, sep, value = literal.partition("=")
            if not sep:
                raise KustomizeError(f"literal {literal!r} has no '='")
            data[key] = value
        unknown = set(spec) - {"name", "behavior", "files", "literals"}
        if unknown:
            raise KustomizeError(f"configMapGenerator {name}: unsupported {sorted(unknown)}")
        if behavior == "create":
            if name in generated:
                raise KustomizeError(f"ConfigMap {name} already exists (use behavior: merge)")
            generated[name] = Generated(name, data)
        elif behavior == "merge":
            if name not in generated:
                raise KustomizeError(f"merge into unknown ConfigMap {name}")
            generated[name].data.update(data)
        else:
            raise KustomizeError(f"behavior {behavior!r} not supported")
    for item in k.get("replicas", []):
        found = [r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == item["name"]]
        if not found:
            raise KustomizeError(f"replicas: no Deployment {item['name']}")
        for resource in found:
            resource["spec"]["replicas"] = item["count"]
    for image in k.get("images", []):
        for resource in resources:
            for container in _containers(resource):
                repo, _, _tag = container["image"].partition(":")
                if repo == image["name"]:
                    new_repo = image.get("newName", repo)
                    new_tag = image.get("newTag")
                    container["image"] = f"{new_repo}:{new_tag}" if new_tag else new_repo
    namespace = k.get("namespace")
    if namespace:
        for resource in resources:
            resource.setdefault("metadata", {})["namespace"] = namespace
        for gen in generated.values():
            gen.namespace = namespace
    return Build(resources, generated)


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def build(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in `directory`, as `kubectl kustomize` would (content-wise)."""
    result = _accumulate(directory)
    names = {name: f"{name}-{configmap_hash(gen.data)}" for name, gen in result.generated.items()}
    out: list[dict[str, Any]] = []
    for name, gen in result.generated.items():
        metadata: dict[str, Any] = {"name": names[name]}
        if gen.namespace:
            metadata["namespace"] = gen.namespace
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(gen.data)})
    for resource in result.resources:
        if resource["kind"] == "Deployment":
            _rename_references(resource, names)
        out.append(resource)
    return out


def _rename_references(deployment: dict[str, Any], names: dict[str, str]) -> None:
    spec = deployment["spec"]["template"]["spec"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume and volume["configMap"]["name"] in names:
            volume["configMap"]["name"] = names[volume["configMap"]["name"]]
    for container in _containers(deployment):
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref and ref["name"] in names:
                ref["name"] = names[ref["name"]]
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref["name"] in names:
                ref["name"] = names[ref["name"]]


def by_kind_and_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}
