#!/usr/bin/env python3
"""Renders what the Kubernetes manifests take from elsewhere; run by
scripts/package (`--only kubernetes`), checked by tests/packaging.rs.

- Each ConfigMap is config.toml itself, every setting documented as there,
  with the few values a pod changes (below): one source for the defaults.
- Each workload's image is `vidaud:<version>`, the version in Cargo.toml.

The rest of each manifest is written by hand in its file.
"""

import argparse
import re
import sys
from pathlib import Path

# (section, key, value) set in the ConfigMap's copy of config.toml. The
# paths the image puts on its volume come from the image's environment.
POD = [
    # A conversion in hand gets this long to finish on stop; the pods'
    # terminationGracePeriodSeconds is 30 s more.
    ("transcoder", "shutdown_grace_secs", "300"),
]
VARIANTS = {
    "embedded/configmap.yaml": ("vidaud-embedded-config", POD),
    "cluster/base/configmap.yaml": (
        "vidaud-cluster-config",
        POD + [("backend", "kind", '"cluster"')],
    ),
}
WORKLOADS = ["embedded/statefulset.yaml", "cluster/base/deployment.yaml"]


def set_value(toml, section, key, value):
    """config.toml with one `key = ...` line of `[section]` changed."""
    lines = toml.splitlines(keepends=True)
    current, hits = None, 0
    for i, line in enumerate(lines):
        header = re.match(r"^\[([a-z_]+)\]\s*$", line)
        if header:
            current = header.group(1)
        elif current == section and re.match(rf"^{key} = ", line):
            lines[i] = f"{key} = {value}\n"
            hits += 1
    if hits != 1:
        sys.exit(f"render.py: config.toml has {hits} lines `{key} = ` in [{section}], not one")
    return "".join(lines)


def configmap(name, toml, source):
    body = "".join(f"    {line}".rstrip() + "\n" for line in toml.splitlines())
    return (
        f"# Generated from {source} by scripts/package (deploy/kubernetes/render.py):\n"
        "# edit config.toml or render.py, not this file. Settings given in a pod's\n"
        "# environment (VIDAUD_<SECTION>__<KEY>, the image's and the workload's) win.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {name}\n"
        "data:\n"
        "  config.toml: |\n"
        f"{body}"
    )


def with_image(manifest, version):
    text, n = re.subn(r"(?m)^(\s+image: )vidaud:\S+$", rf"\g<1>vidaud:{version}", manifest)
    if n != 1:
        sys.exit(f"render.py: expected one `image: vidaud:...` line, found {n}")
    return text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="deploy/kubernetes, or a copy to compare")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    out = Path(args.out)
    toml = Path(args.config).read_text()
    for path, (name, changes) in VARIANTS.items():
        text = toml
        for section, key, value in changes:
            text = set_value(text, section, key, value)
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap(name, text, Path(args.config).name))
    for path in WORKLOADS:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(with_image((here / path).read_text(), args.version))


if __name__ == "__main__":
    main()
