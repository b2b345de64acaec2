#!/usr/bin/env python3
"""Writes kubeconform's strict JSON schemas for every kind in a Kubernetes swagger.json.

The schemas kubeconform downloads by default live on GitHub; this builds the same kind of
schema offline from the OpenAPI document that ships inside the k8s.io/kubernetes Go module
(api/openapi-spec/swagger.json), fetched through the Go module proxy.

Each file is named as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects
(deployment-apps-v1.json, service-v1.json) and holds the kind's definition with every definition
it reaches. Strict, as kubeconform's "-strict" schemas: an object with declared properties
accepts no other key. int-or-string fields take either; quantities take strings or numbers.

Usage: k8s_schemas.py SWAGGER_JSON OUT_DIR
"""

import json
import os
import sys

REF = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def strict(node):
    """Recursively close objects with properties and widen int-or-string fields."""
    if isinstance(node, list):
        return [strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {k: strict(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            found.add(ref[len(REF):])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def closure(defs, root):
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found = set()
        refs(defs[name], found)
        todo.extend(found - seen)
    return seen


def main():
    swagger, out_dir = sys.argv[1], sys.argv[2]
    with open(swagger, encoding="utf-8") as f:
        defs = json.load(f)["definitions"]
    defs = {name: strict(d) for name, d in defs.items()}
    defs[INT_OR_STRING] = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    defs[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            schema = dict(d)
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["definitions"] = {n: defs[n] for n in closure(defs, name) if n != name}
            path = os.path.join(out_dir, f"{kind.lower()}{suffix.lower()}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(schema, f)
            written += 1
    print(f"{written} schemas in {out_dir}")


if __name__ == "__main__":
    main()
