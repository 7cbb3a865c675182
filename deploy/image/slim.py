#!/usr/bin/env python3
"""The image's root, made smaller and safe to share; run by scripts/package
as mmdebstrap's customize hook: `slim.py ROOT BASE.txt FACTS.json`.

Debian's GStreamer plugin packages depend on everything any of their
plugins links (GTK, OpenGL and Mesa with LLVM, speech synthesis, Intel's
media SDK...). The plugins a conversion never loads were not unpacked
(deploy/image/plugins); this purges, with dpkg, every package none of whose
files the node can load: the ELF closure of the binary, GStreamer's plugin
scanner and the plugins kept. The packages of the essential root
(BASE.txt, listed before anything else was installed) stay, and so do
vidaud and ca-certificates (TLS to SMTP servers and webhook receivers).
dpkg's database stays true: what is gone is recorded as not installed.

Also: the JWT secret the package's postinst made is removed (every
container of the image would share it; the image makes its own on its
volume), and FACTS.json records what the image is made of (the Debian
archive's state as its Release files date it, every package and version)
for the image's labels.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

KEEP = {"vidaud", "ca-certificates"}
LIBDIR = "usr/lib/x86_64-linux-gnu"


def chroot(root, *args, **kwargs):
    return subprocess.run(["chroot", root, *args], check=True, text=True, **kwargs)


def installed(root):
    """name -> version"""
    out = chroot(
        root,
        "dpkg-query",
        "-W",
        "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n",
        capture_output=True,
    ).stdout
    packages = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.startswith("ii"):
            packages[name] = version
    return packages


def owners(root):
    """Every packaged path (as /usr/... : usrmerge) -> its package."""
    owner = {}
    info = Path(root, "var/lib/dpkg/info")
    for listing in info.glob("*.list"):
        package = listing.stem.split(":")[0]
        for path in listing.read_text(errors="replace").splitlines():
            owner[merged(path)] = package
    return owner


def merged(path):
    for top in ("/lib/", "/lib64/", "/bin/", "/sbin/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def closure(root):
    """The files the node can load: its ELF objects and what they link."""
    plugins = sorted(
        "/" + str(p.relative_to(root)) for p in Path(root, LIBDIR, "gstreamer-1.0").glob("*.so")
    )
    objects = [
        "/usr/bin/vidaud",
        f"/{LIBDIR}/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner",
        *plugins,
    ]
    out = chroot(root, "ldd", *objects, capture_output=True).stdout
    files = set(objects)
    for line in out.splitlines():
        if "not found" in line:
            sys.exit(f"slim.py: a library is missing in the image: {line.strip()}")
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            files.add(parts[1].split()[0])
        elif line.strip().startswith("/") and "(" in line:
            files.add(line.split()[0])  # the dynamic loader
    # Symbolic links to their files: dpkg lists the file a link names.
    resolved = set()
    for f in files:
        resolved.add(merged(f))
        real = os.path.realpath(os.path.join(root, f.lstrip("/")))
        resolved.add(merged("/" + os.path.relpath(real, root)))
    return resolved


def release_dates(root):
    """suite -> Date of the Release file apt read it from."""
    dates = {}
    for release in Path(root, "var/lib/apt/lists").glob("*Release"):
        fields = {}
        for line in release.read_text(errors="replace").splitlines():
            if ":" in line and not line.startswith(" "):
                key, _, value = line.partition(":")
                fields.setdefault(key, value.strip())
        if "Suite" in fields and "Date" in fields:
            dates[fields["Suite"]] = fields["Date"]
    return dates


def main():
    root, base_path, facts_path = sys.argv[1], sys.argv[2], sys.argv[3]
    base = set(Path(base_path).read_text().split())
    Path(root, "etc/vidaud/secrets.env").unlink(missing_ok=True)

    packages = installed(root)
    needed = {owners(root).get(f) for f in closure(root)} - {None}
    purge = sorted(
        name
        for name in packages
        if name not in base and name not in needed and name not in KEEP
    )
    if purge:
        purged = subprocess.run(
            ["chroot", root, "dpkg", "--purge", "--force-depends", *purge],
            text=True,
            capture_output=True,
        )
        if purged.returncode != 0:
            sys.exit(f"slim.py: dpkg --purge failed:\n{purged.stdout}{purged.stderr}")
    for log in ("var/log/dpkg.log", "var/log/alternatives.log"):
        Path(root, log).unlink(missing_ok=True)

    remaining = installed(root)
    facts = {
        "releases": release_dates(root),
        "packages": dict(sorted(remaining.items())),
        "purged": purge,
    }
    Path(facts_path).write_text(json.dumps(facts, indent=1))
    print(
        f"slim.py: {len(remaining)} packages kept, {len(purge)} purged "
        f"(no file of theirs is loaded by a conversion)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
