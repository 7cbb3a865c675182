#!/usr/bin/env python3
"""Writes vidaud's OCI image archive from a root file system tarball; run by
scripts/package.

One layer (the root mmdebstrap made), an image configuration (what runs,
as whom, where its data lives, how its health is checked, the labels that
record what it is made of), an OCI image layout (index.json, oci-layout,
blobs/) that `podman load` and `skopeo` read, and beside it the
`manifest.json` `docker load` reads, naming the same blobs, as `docker
save` writes them since Docker 25. Nothing is pulled from a registry and
nothing depends on a container engine's storage. Everything is a pure
function of the inputs: the same root and version give the same archive,
byte for byte (times come from SOURCE_DATE_EPOCH).

The health check is Docker's `Healthcheck` field of the configuration:
Docker runs it; OCI has no such field and Podman reads it only from Docker
manifests (`podman run --health-cmd "vidaud health"` there), Kubernetes
probes /health and /ready itself.
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

SECOND = 1_000_000_000  # Docker's durations are nanoseconds
DATA = "/var/lib/vidaud"


def image_config(version, revision, created, facts, diff_id):
    releases = facts["releases"]
    # The newest Release file's date: the Debian archive as it was then
    # (a snapshot of the archive at that time holds every package listed).
    newest = max(
        (time.strptime(d.replace("UTC", "+0000"), "%a, %d %b %Y %H:%M:%S %z") for d in releases.values()),
        default=None,
    )
    snapshot = time.strftime("%Y%m%dT%H%M%SZ", newest) if newest else "unknown"
    labels = {
        "org.opencontainers.image.title": "vidaud",
        "org.opencontainers.image.description": "Self-hosted video-to-audio conversion service",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.base.name": "debian:bookworm (mmdebstrap, essential)",
        "org.debian.snapshot": snapshot,
        "org.debian.releases": "; ".join(f"{suite}: {date}" for suite, date in sorted(releases.items())),
        "org.debian.packages": " ".join(f"{name}={ver}" for name, ver in facts["packages"].items()),
    }
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "900:900",
            "ExposedPorts": {"8080/tcp": {}},
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "VIDAUD_CONFIG=/etc/vidaud/config.toml",
                "VIDAUD_HTTP__LISTEN=0.0.0.0:8080",
                # Everything the node writes is on the volume: the root can be
                # read-only.
                f"VIDAUD_BACKEND__DATA_DIR={DATA}/data",
                f"VIDAUD_TRANSCODER__SPOOL_DIR={DATA}/spool",
                f"VIDAUD_ADMIN__SOCKET={DATA}/admin.sock",
                # Made on the volume at the first start unless
                # VIDAUD_AUTH__JWT_SECRET is given (a cluster's nodes share one).
                f"VIDAUD_AUTH__JWT_SECRET_FILE={DATA}/jwt-secret",
                "VIDAUD_AUTH__JWT_SECRET_CREATE=true",
                f"HOME={DATA}",
            ],
            "Entrypoint": ["/usr/bin/vidaud"],
            "Cmd": ["serve"],
            "Volumes": {DATA: {}},
            "WorkingDir": DATA,
            "StopSignal": "SIGTERM",
            "Labels": labels,
            "Healthcheck": {
                "Test": ["CMD", "/usr/bin/vidaud", "health"],
                "Interval": 30 * SECOND,
                "Timeout": 5 * SECOND,
                "StartPeriod": 30 * SECOND,
                "Retries": 3,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": created,
                "created_by": f"scripts/package: mmdebstrap bookworm (essential) + vidaud {version}",
            }
        ],
    }


def add_blob(blobs, data=None, path=None):
    """Stores bytes (or a file) as a blob; returns (digest, size)."""
    digest = hashlib.sha256()
    if path is not None:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        size = os.path.getsize(path)
        name = "sha256:" + digest.hexdigest()
        shutil.move(path, blobs / digest.hexdigest())
    else:
        digest.update(data)
        size = len(data)
        name = "sha256:" + digest.hexdigest()
        (blobs / digest.hexdigest()).write_bytes(data)
    return name, size


def compress_layer(rootfs, out, level):
    """gzip of the root tarball, without a name or time in its header; and
    the digest of the uncompressed tarball (the layer's diff_id)."""
    diff = hashlib.sha256()
    with open(rootfs, "rb") as src, open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as gz:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                diff.update(chunk)
                gz.write(chunk)
    return "sha256:" + diff.hexdigest()


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rootfs", required=True)
    parser.add_argument("--facts", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compress-level", type=int, default=6)
    args = parser.parse_args()

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    facts = json.loads(Path(args.facts).read_text())
    tag = f"localhost/vidaud:{args.version}"

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        layout = Path(tmp, "layout")
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        packed = Path(tmp, "layer.tar.gz")
        diff_id = compress_layer(args.rootfs, packed, args.compress_level)
        layer, layer_size = add_blob(blobs, path=packed)
        config = image_config(args.version, args.revision, created, facts, diff_id)
        config_digest, config_size = add_blob(blobs, data=canonical(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer,
                    "size": layer_size,
                }
            ],
        }
        manifest_digest, manifest_size = add_blob(blobs, data=canonical(manifest))
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {
                        "org.opencontainers.image.ref.name": tag,
                        "io.containerd.image.name": tag,
                    },
                }
            ],
        }
        (layout / "index.json").write_bytes(canonical(index))
        (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
        docker = [
            {
                "Config": f"blobs/sha256/{config_digest.split(':')[1]}",
                "RepoTags": [tag],
                "Layers": [f"blobs/sha256/{layer.split(':')[1]}"],
            }
        ]
        (layout / "manifest.json").write_bytes(canonical(docker))

        partial = args.out + ".partial"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(layout.rglob("*")):
                info = archive.gettarinfo(path, str(path.relative_to(layout)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
                info.mode = 0o755 if path.is_dir() else 0o644
                if path.is_file():
                    with open(path, "rb") as f:
                        archive.addfile(info, f)
                else:
                    archive.addfile(info)
        os.replace(partial, args.out)
    print(json.dumps({"image": tag, "manifest": manifest_digest, "layer_bytes": layer_size}))


if __name__ == "__main__":
    main()
