#!/usr/bin/env python3
"""The manifests of deploy/kubernetes as Podman 4.3's `kube play` can run
them, for tests/packaging.rs:

  kube.py MANIFEST... --out PLAY.yaml --secrets DIR [--env K=V]... [--host-port P]

What Kubernetes would do that Podman 4.3 does not, done here, and nothing
else changed (containers, images, probes, security contexts, volumes and
resources are the manifests' own):

- A StatefulSet is run as its first pod (`<name>-0`), its claim template
  as that pod's PersistentVolumeClaim (`<claim>-<name>-0`): Podman plays
  Pods, Deployments, ConfigMaps and PVCs, not StatefulSets.
- A Secret is handed to Podman's own secret store (DIR/<name>.json, which
  the test gives `podman secret create`): 4.3 stores a Secret from YAML in
  a form its own secretKeyRef then cannot read.
- Kinds Podman has no use for (Service, PodDisruptionBudget,
  HorizontalPodAutoscaler) are left out.
- The test's own settings (--env: its queues, databases and the address of
  this machine's servers) are added to each container's environment, and
  --host-port publishes the http port on 127.0.0.1 (a Service's job);
  without it no port is published (4.3 would publish each containerPort on
  the host's 0.0.0.0, where a Deployment's replicas collide).
"""

import argparse
import base64
import json
from pathlib import Path

import yaml

PLAYED = {"ConfigMap", "PersistentVolumeClaim", "Pod", "Deployment"}


def pod_of(statefulset):
    name = statefulset["metadata"]["name"]
    template = statefulset["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-0", "labels": template["metadata"].get("labels", {})},
        "spec": dict(template["spec"]),
    }
    claims = []
    volumes = list(pod["spec"].get("volumes", []))
    for claim in statefulset["spec"].get("volumeClaimTemplates", []):
        claim_name = f"{claim['metadata']['name']}-{name}-0"
        claims.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim_name},
                "spec": claim["spec"],
            }
        )
        volumes.append(
            {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}
        )
    pod["spec"]["volumes"] = volumes
    return claims + [pod]


def secret_json(secret, out):
    data = dict(secret.get("data", {}))
    for key, value in secret.get("stringData", {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    path = Path(out, secret["metadata"]["name"] + ".json")
    path.write_text(json.dumps(data))


def containers_of(doc):
    spec = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec["containers"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("manifests", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--host-port", type=int)
    args = parser.parse_args()

    docs = []
    for manifest in args.manifests:
        for doc in yaml.safe_load_all(Path(manifest).read_text()):
            if not doc:
                continue
            if doc["kind"] == "StatefulSet":
                docs.extend(pod_of(doc))
            elif doc["kind"] == "Secret":
                secret_json(doc, args.secrets)
            elif doc["kind"] in PLAYED:
                docs.append(doc)
    extra = [dict(zip(("name", "value"), pair.split("=", 1))) for pair in args.env]
    for doc in docs:
        if doc["kind"] not in ("Pod", "Deployment"):
            continue
        for container in containers_of(doc):
            names = {e["name"] for e in extra}
            container["env"] = [e for e in container.get("env", []) if e["name"] not in names] + extra
            if args.host_port:
                for port in container.get("ports", []):
                    if port.get("name") == "http":
                        port["hostPort"] = args.host_port
                        port["hostIP"] = "127.0.0.1"
            else:
                # Podman 4.3 publishes every containerPort on the host's
                # 0.0.0.0 (in Kubernetes it only names the port), which the
                # replicas of a Deployment cannot share.
                container.pop("ports", None)
    Path(args.out).write_text(yaml.safe_dump_all(docs, sort_keys=False))


if __name__ == "__main__":
    main()
