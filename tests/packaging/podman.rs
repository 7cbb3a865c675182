//! Podman as tests/packaging.rs drives it: the artifacts built once per run
//! (`scripts/package` on the binary the tests were built with), containers
//! and volumes removed when a test is done with them, and the network that
//! keeps to loopback: every container is given its own network namespace by
//! slirp4netns, published ports listen on 127.0.0.1 only, and a container
//! reaches this machine's loopback (the suite's servers) as 10.0.2.2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

/// This machine's loopback as a container sees it (slirp4netns).
pub const HOST: &str = "10.0.2.2";

/// A container's network: its own namespace, this machine's loopback
/// reachable as [`HOST`].
pub const NETWORK: &str = "slirp4netns:allow_host_loopback=true";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests/packaging/prepare builds what the tests install.
pub fn work_dir() -> PathBuf {
    root().join("target/packaging")
}

pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .env(
            "CONTAINERS_CONF",
            root().join("tests/packaging/containers.conf"),
        )
        .args(args)
        .output()
        .expect("podman (scripts/test installs it)")
}

/// Runs podman; its stdout, or a panic with what it said.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs a command of this machine; its stdout, or a panic with its output.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("a command");
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What tests/packaging/prepare made of the binary these tests were built
/// with (`scripts/package`), once per run.
pub struct Artifacts {
    pub version: String,
    pub dir: PathBuf,
    /// The package of this version.
    pub deb: PathBuf,
    /// The same binary packaged as a later version, to upgrade to.
    pub upgrade: PathBuf,
    pub upgrade_version: String,
    /// The image, loaded: `localhost/vidaud:<version>`.
    pub image: String,
}

pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let dir = work_dir();
        let binary = Path::new(env!("CARGO_BIN_EXE_vidaud"));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let stamp = modified(&dir.join("prepared"));
        if stamp.is_none() || stamp < modified(binary) {
            let started = Instant::now();
            run_ok(
                Command::new(root().join("tests/packaging/prepare"))
                    .arg(binary)
                    .arg(&dir),
            );
            eprintln!("tests/packaging/prepare: {:?}", started.elapsed());
        }
        let version = env!("CARGO_PKG_VERSION").to_owned();
        let upgrade_version = format!("{version}+upgrade1");
        let archive = dir.join(format!("vidaud-{version}.oci.tar"));
        let image = format!("localhost/vidaud:{version}");
        // An earlier run's image, and what its replacement left untagged.
        let _ = podman(&["rmi", "--force", &image]);
        let _ = podman(&["image", "prune", "--force"]);
        podman_ok(&["load", "-i", &archive.display().to_string()]);
        Artifacts {
            deb: dir.join(format!("vidaud_{version}_amd64.deb")),
            upgrade: dir.join(format!("vidaud_{upgrade_version}_amd64.deb")),
            image,
            version,
            upgrade_version,
            dir,
        }
    })
}

/// The fresh Debian 12 root with systemd, as an image: what `apt install
/// ./vidaud.deb` is run on.
pub fn debian_root() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tar = artifacts().dir.join("debian-root.tar");
        let image = "localhost/vidaud-test-debian:bookworm".to_owned();
        let _ = podman(&["rmi", "--force", &image]);
        podman_ok(&["import", &tar.display().to_string(), &image]);
        image
    })
}

/// A container, removed (with its anonymous volumes) when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run -d --name <prefix>-<unique> ARGS...`.
    pub fn run(prefix: &str, args: &[&str]) -> Container {
        let name = crate::common::unique(prefix);
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        podman_ok(&all);
        Container { name }
    }

    /// `bash -c SCRIPT` in the container: exit code and stdout + stderr.
    pub fn exec(&self, script: &str) -> (i32, String) {
        let out = podman(&["exec", &self.name, "bash", "-c", script]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// As [`exec`](Self::exec); panics unless it exits 0.
    pub fn exec_ok(&self, script: &str) -> String {
        let (code, text) = self.exec(script);
        assert_eq!(code, 0, "in {}: {script}\n{text}", self.name);
        text
    }

    pub fn logs(&self) -> String {
        let out = podman(&["logs", "--tail", "60", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// SIGKILL to every process of the container, at once.
    pub fn kill9(&self) {
        podman_ok(&["kill", "--signal", "KILL", &self.name]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--volumes", "--time", "0", &self.name]);
    }
}

/// A named volume, removed when dropped.
pub struct Volume {
    pub name: String,
}

impl Volume {
    pub fn new(prefix: &str) -> Volume {
        let name = crate::common::unique(prefix);
        podman_ok(&["volume", "create", &name]);
        Volume { name }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = podman(&["volume", "rm", "--force", &self.name]);
    }
}
