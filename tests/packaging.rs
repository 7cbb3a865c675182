//! The artifacts operators install, installed and run as they would be
//! (issue 29). `scripts/package` builds the Debian package and the OCI
//! image from the binary these tests were built with; the package is
//! installed with apt into a fresh Debian 12 root booted with systemd (a
//! podman container), the image runs under podman on both backends, and
//! the Kubernetes manifests are validated against Kubernetes' schemas and
//! run by `podman kube play`. Containers keep to loopback (tests/packaging/
//! podman.rs). The tests of this file run one at a time: they share one
//! podman and each keeps the two cores busy.

mod common;
#[path = "packaging/podman.rs"]
mod podman;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::media;
use common::{Api, Backend, Names, Node, NodeOptions, free_port, node_env, unique};
use podman::{Container, HOST, NETWORK, Volume, artifacts, debian_root, podman_ok, run_ok};
use serde_json::Value;

/// One test of this file at a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A client of a node in `container` published on 127.0.0.1:`port`, whose
/// failures show what the container logged (or, `journal`, systemd's
/// journal of the unit).
fn api_of(container: &Container, port: u16, journal: bool) -> Api {
    let name = container.name.clone();
    Api::new(
        format!("http://127.0.0.1:{port}"),
        Arc::new(move || {
            let args: Vec<&str> = if journal {
                vec![
                    "exec",
                    &name,
                    "journalctl",
                    "-u",
                    "vidaud",
                    "-n",
                    "60",
                    "--no-pager",
                ]
            } else {
                vec!["logs", "--tail", "60", &name]
            };
            let out = podman::podman(&args);
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }),
    )
}

/// The README's walk-through against `api`: register, log in, upload a
/// clip, wait for it, download the audio and decode it. The done job.
async fn walk_through(api: &Api, dir: &Path) -> (String, Value) {
    let (_, token) = api.new_user().await;
    let (status, body) = api.upload(&token, &media::clip("mp4")).await;
    assert_eq!(status, 202, "{body}\n{}", api.log_tail());
    let job_id = body["job_id"].as_str().expect("job_id");
    let job = api.wait_final(&token, job_id).await;
    assert_eq!(job["state"], "done", "{job}\n{}", api.log_tail());
    let audio = api.save_audio(&token, &job, dir).await;
    media::assert_decodes(&audio);
    (token, job)
}

/// Every file of the machine but the kernel's, the logs, the caches, apt's
/// and dpkg's records, and the test's own; with owner and mode, and the
/// checksums of the account files (their `-` backups aside).
const SNAPSHOT: &str = r#"find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
  -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \
  -o -path /root -o -path /pkg -o -path /var/lib/systemd/catalog -o -path '/etc/*-' \) -prune \
  -o -printf '%p %M %u %g\n' | sort; md5sum /etc/passwd /etc/group /etc/shadow /etc/gshadow"#;

fn apt(package: &Path, extra: &str) -> String {
    format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y {extra} /pkg/{}",
        package.file_name().expect("a file").to_string_lossy()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn deb_installs_a_serving_node_upgrades_and_purges_clean() {
    let _one = serial().await;
    let artifacts = artifacts();
    let root = debian_root();
    let port = free_port();
    let published = format!("127.0.0.1:{port}:8080");
    let packages = format!("{}:/pkg:ro", artifacts.dir.display());
    // --privileged: systemd in the container sets up the unit's sandbox
    // (namespaces, mounts) as on a machine of its own.
    let machine = Container::run(
        "vidaud-deb",
        &[
            "--privileged",
            "--systemd=always",
            "--network",
            NETWORK,
            "-p",
            &published,
            "-v",
            &packages,
            root,
            "/sbin/init",
        ],
    );
    machine.exec("systemctl is-system-running --wait");
    // The one thing the test changes: the node listens where the published
    // port arrives (a drop-in, as an admin would; the conffile stays as
    // shipped). The test removes it before each purge: it is the test's.
    let drop_in = "/etc/systemd/system/vidaud.service.d";
    let listen = format!(
        "mkdir -p {drop_in} && printf '[Service]\\nEnvironment=VIDAUD_HTTP__LISTEN=0.0.0.0:8080\\n' \
         >{drop_in}/listen.conf"
    );
    machine.exec_ok(&listen);

    let started = Instant::now();
    let installed = machine.exec_ok(&apt(&artifacts.deb, ""));
    assert!(installed.contains("Need to get 0 B"), "{installed}");
    let api = api_of(&machine, port, true);
    api.wait_healthy(Duration::from_secs(120), || Ok(())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (token, job) = walk_through(&api, dir.path()).await;
    eprintln!("apt install to a converted clip: {:?}", started.elapsed());

    // The unit as installed: systemd verifies it, runs it as `vidaud`, and
    // reads the secret it was given by the package.
    let main_pid = "systemctl show -p MainPID --value vidaud";
    let user = machine.exec_ok(&format!("stat -c %U /proc/$({main_pid})"));
    assert_eq!(user.trim(), "vidaud");
    let verify = machine.exec_ok("systemd-analyze verify vidaud.service 2>&1");
    assert!(
        !verify.contains("vidaud"),
        "systemd-analyze verify: {verify}"
    );
    let secrets = machine.exec_ok("stat -c '%U %a' /etc/vidaud/secrets.env");
    assert_eq!(secrets.trim(), "root 600");
    let secret_sum = machine.exec_ok("md5sum /etc/vidaud/secrets.env");
    let mails = machine.exec_ok("ls /var/lib/vidaud/data/maildir/new | wc -l");
    assert_eq!(mails.trim(), "1", "the ready mail, in the Maildir");

    // An upgrade: the node restarts on the new package and keeps users,
    // jobs, files and the secret (the token still works).
    let pid = machine.exec_ok(main_pid);
    machine.exec_ok(&apt(&artifacts.upgrade, ""));
    let version = machine.exec_ok("dpkg-query -W -f='${Version}' vidaud");
    assert_eq!(version, artifacts.upgrade_version);
    api.wait_healthy(Duration::from_secs(120), || Ok(())).await;
    assert_ne!(machine.exec_ok(main_pid), pid, "restarted by the upgrade");
    assert_eq!(
        machine.exec_ok("md5sum /etc/vidaud/secrets.env"),
        secret_sum
    );
    let job_id = job["job_id"].as_str().expect("job_id");
    let (status, kept) = api.job(&token, job_id).await;
    assert_eq!((status, &kept["state"]), (200, &Value::from("done")));
    let again = api.save_audio(&token, &kept, dir.path()).await;
    media::assert_decodes(&again);

    // A second install and a downgrade say what they do.
    let reinstalled = machine.exec_ok(&apt(&artifacts.upgrade, "--reinstall"));
    assert!(reinstalled.contains("reinstalling"), "{reinstalled}");
    let refused = machine.exec(&apt(&artifacts.deb, ""));
    assert_ne!(
        refused.0, 0,
        "apt refuses a downgrade unasked: {}",
        refused.1
    );
    let downgraded = machine.exec_ok(&apt(&artifacts.deb, "--allow-downgrades"));
    assert!(
        downgraded.contains(&format!(
            "downgrading from {} to {}",
            artifacts.upgrade_version, artifacts.version
        )),
        "{downgraded}"
    );
    api.wait_healthy(Duration::from_secs(120), || Ok(())).await;
    assert_eq!(api.job(&token, job_id).await.0, 200, "the job survives");

    // Purged: nothing of it is left. Its dependencies stay (apt's
    // autoremove is theirs to do, and what their own scripts leave is
    // Debian's), so the proof is in two parts: after the purge no path,
    // account or unit names vidaud; and a second install, start and purge
    // leaves the machine exactly as the first purge did.
    let purge =
        format!("rm -r {drop_in} && DEBIAN_FRONTEND=noninteractive apt-get purge -y vidaud");
    machine.exec_ok(&purge);
    machine.exec_ok(&format!("{{ {SNAPSHOT}; }} >/root/purged"));
    let (_, named) = machine.exec(
        "grep -i vidaud /root/purged; grep -s vidaud /etc/passwd /etc/group /etc/shadow /etc/gshadow; \
         find /run /etc/systemd /var/lib/systemd -name '*vidaud*'",
    );
    assert!(
        named.trim().is_empty(),
        "left behind by the package:\n{named}"
    );
    machine.exec_ok(&listen);
    machine.exec_ok(&apt(&artifacts.deb, ""));
    api.wait_healthy(Duration::from_secs(120), || Ok(())).await;
    machine.exec_ok(&purge);
    machine.exec_ok(&format!("{{ {SNAPSHOT}; }} >/root/purged-again"));
    let (same, diff) = machine.exec("diff /root/purged /root/purged-again");
    assert_eq!(same, 0, "a second install and purge left:\n{diff}");
}

/// Converts `input` (a path under /media in the container) inside it, in
/// the node's own sandboxed child, to `output`.
fn convert_in(container: &Container, input: &str, output: &str) {
    container.exec_ok(&format!("vidaud convert --sandbox {input} {output}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn image_serves_from_its_volume_on_a_read_only_root_and_converts_every_kind() {
    let _one = serial().await;
    let artifacts = artifacts();
    let volume = Volume::new("vidaud-data");
    let media_dir = media::clip("mp4").parent().expect("media dir").to_owned();
    let out = tempfile::tempdir().expect("tempdir");
    run_ok(Command::new("chmod").arg("0777").arg(out.path()));
    let port = free_port();
    let started = Instant::now();
    let run = |name: &str| {
        Container::run(
            name,
            &[
                "--read-only",
                "--network",
                NETWORK,
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                "-v",
                &format!("{}:/var/lib/vidaud", volume.name),
                "-v",
                &format!("{}:/media:ro", media_dir.display()),
                "-v",
                &format!("{}:/out", out.path().display()),
                &artifacts.image,
            ],
        )
    };
    let node = run("vidaud-image");
    let api = api_of(&node, port, false);
    api.wait_healthy(Duration::from_secs(60), || Ok(())).await;
    let (token, job) = walk_through(&api, out.path()).await;
    eprintln!("podman run to a converted clip: {:?}", started.elapsed());

    // Its own health check, and the sandbox it converts in, inside
    // podman's default seccomp profile (Kubernetes' RuntimeDefault).
    assert!(node.exec_ok("vidaud health").contains(": 200"));
    let logs = node.logs();
    assert!(
        logs.contains("conversion children in a sandbox: seccomp filters available, Landlock ABI"),
        "{logs}"
    );
    assert_eq!(node.exec_ok("id -u").trim(), "900");

    // Every kind of input the transcoder promises, and every output format,
    // with the plugins the image kept.
    for (kind, ..) in media::INPUTS {
        let file = media::clip(kind);
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        convert_in(
            &node,
            &format!("/media/{name}"),
            &format!("/out/{kind}.mp3"),
        );
        media::assert_decodes(&out.path().join(format!("{kind}.mp3")));
    }
    let mkv = media::clip("mkv");
    let mkv = mkv.file_name().expect("name").to_string_lossy();
    for format in ["opus", "m4a", "flac"] {
        convert_in(
            &node,
            &format!("/media/{mkv}"),
            &format!("/out/mkv.{format}"),
        );
        media::assert_decodes(&out.path().join(format!("mkv.{format}")));
    }

    // Restarted on the same volume: the same secret (the token works) and
    // the same jobs.
    drop(node);
    let again = run("vidaud-image-again");
    let api = api_of(&again, port, false);
    api.wait_healthy(Duration::from_secs(60), || Ok(())).await;
    let job_id = job["job_id"].as_str().expect("job_id");
    let (status, kept) = api.job(&token, job_id).await;
    assert_eq!((status, &kept["state"]), (200, &Value::from("done")));
}

/// The suite's settings for a container of `names`' group, as `-e` args.
fn container_env(names: &Names, node_id: &str) -> Vec<String> {
    let options = NodeOptions::default().on(Backend::Cluster);
    let mut env = node_env(names, &options, HOST);
    env.retain(|(k, _)| k != "VIDAUD_BACKEND__DATA_DIR");
    env.push(("VIDAUD_NODE__ID".into(), node_id.into()));
    // A job on a killed node is taken over once its lease runs out.
    env.push(("VIDAUD_TRANSCODER__LEASE_SECS".into(), "5".into()));
    env.into_iter()
        .flat_map(|(k, v)| ["-e".to_owned(), format!("{k}={v}")])
        .collect()
}

/// A node on this machine that takes no jobs (drained): the test's way in
/// to a group whose conversions run elsewhere, and its storage checks.
async fn front_door(names: &Names) -> Node {
    let node = Node::start_named(
        names.clone(),
        NodeOptions::default().on(Backend::Cluster),
        true,
    )
    .await;
    let (code, answer) = node.ctl(&["drain"]);
    assert_eq!(code, 0, "{answer}");
    node
}

/// Uploads `count` clips as a fresh user: (email, token, job ids).
async fn backlog(node: &Node, count: usize) -> (String, String, Vec<String>) {
    let (email, token) = node.new_user().await;
    let clips = vec![media::clip("mp4"); count];
    let ids = node.upload_all(&token, &clips).await;
    (email, token, ids)
}

/// Which node converted each done job.
fn converted_by(jobs: &[Value]) -> std::collections::HashMap<String, usize> {
    let mut by = std::collections::HashMap::new();
    for job in jobs.iter().filter(|j| j["state"] == "done") {
        *by.entry(job["node"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    by
}

#[tokio::test(flavor = "multi_thread")]
async fn image_on_the_cluster_backend_shares_a_backlog_and_loses_nothing_to_kill9() {
    let _one = serial().await;
    let artifacts = artifacts();
    let names = Names::fresh();
    let node = front_door(&names).await;
    let ids: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| unique(&format!("ctr-{n}")))
        .collect();
    let containers: Vec<Container> = ids
        .iter()
        .map(|id| {
            let mut args: Vec<String> =
                vec!["--read-only".into(), "--network".into(), NETWORK.into()];
            args.extend(container_env(&names, id));
            args.push(artifacts.image.clone());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Container::run("vidaud-cluster", &args)
        })
        .collect();

    let (email, token, jobs) = backlog(&node, 16).await;
    // Kill -9 the second container while it converts, after it has done
    // one: its job returns to the queue and the first finishes it.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let records = node.job_records().await;
        let b_done = records
            .iter()
            .any(|r| r["node"] == ids[1].as_str() && r["state"] == "done");
        let b_busy = records
            .iter()
            .any(|r| r["node"] == ids[1].as_str() && r["state"] == "converting");
        if b_done && b_busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} never converted: {}",
            ids[1],
            containers[1].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    containers[1].kill9();
    let finals = node.wait_all_final(&token, &jobs).await;
    let by = converted_by(&finals);
    assert!(
        by.get(&ids[0]).is_some_and(|n| *n > 0) && by.get(&ids[1]).is_some_and(|n| *n > 0),
        "both containers converted some: {by:?}"
    );
    let (done, failed, _) = node
        .assert_settled_despite_kills(&email, &finals, &[], 1)
        .await;
    assert_eq!((done, failed), (jobs.len(), 0));
    eprintln!("two containers, kill -9 of one: {by:?}");
}

/// The manifests' files, for kubernetes-validate and kube play.
fn manifests(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .expect("manifests")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn kubernetes_manifests_are_rendered_from_config_toml_and_valid() {
    // What scripts/package renders is what is committed.
    let fresh = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_ok(
        Command::new("python3")
            .arg(root.join("deploy/kubernetes/render.py"))
            .args(["--version", env!("CARGO_PKG_VERSION"), "--config"])
            .arg(root.join("config.toml"))
            .arg("--out")
            .arg(fresh.path()),
    );
    for rendered in [
        "embedded/configmap.yaml",
        "embedded/statefulset.yaml",
        "cluster/base/configmap.yaml",
        "cluster/base/deployment.yaml",
    ] {
        let committed = std::fs::read_to_string(root.join("deploy/kubernetes").join(rendered))
            .expect("committed manifest");
        let made = std::fs::read_to_string(fresh.path().join(rendered)).expect("rendered");
        assert_eq!(
            committed, made,
            "{rendered} is stale: run scripts/package --only kubernetes"
        );
    }
    // Every Kubernetes object against the Kubernetes schemas, strictly
    // (no field the schema does not know).
    let mut files = manifests("embedded");
    files.extend(manifests("cluster"));
    files.extend(manifests("cluster/base"));
    let out = run_ok(
        Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .args(&files),
    );
    assert!(!out.contains("ERROR"), "{out}");
}

/// `podman kube play` of `manifests` (made playable by tests/packaging/
/// kube.py) with the test's own `secrets` and `env`; torn down when dropped.
struct Play {
    yaml: tempfile::TempDir,
    secrets: Vec<String>,
}

impl Play {
    fn start(
        manifests: &[String],
        secrets: &[(&str, Value)],
        env: &[(String, String)],
        host_port: Option<u16>,
    ) -> Play {
        let yaml = tempfile::tempdir().expect("tempdir");
        let mut inputs = manifests.to_vec();
        for (name, data) in secrets {
            let path = yaml.path().join(format!("{name}-secret.yaml"));
            let doc = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "type": "Opaque", "stringData": data,
            });
            std::fs::write(&path, doc.to_string()).expect("secret");
            inputs.push(path.display().to_string());
        }
        let play = yaml.path().join("play.yaml");
        let mut command = Command::new("python3");
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/packaging/kube.py"))
            .args(&inputs)
            .arg("--out")
            .arg(&play)
            .arg("--secrets")
            .arg(yaml.path());
        for (k, v) in env {
            command.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(port) = host_port {
            command.arg("--host-port").arg(port.to_string());
        }
        run_ok(&mut command);
        let mut made = Vec::new();
        for (name, _) in secrets {
            let _ = podman::podman(&["secret", "rm", name]);
            let json = yaml.path().join(format!("{name}.json"));
            podman_ok(&["secret", "create", name, &json.display().to_string()]);
            made.push(name.to_string());
        }
        let result = Play {
            yaml,
            secrets: made,
        };
        podman_ok(&["kube", "play", "--network", NETWORK, &result.file()]);
        result
    }

    fn file(&self) -> String {
        self.yaml.path().join("play.yaml").display().to_string()
    }
}

impl Drop for Play {
    fn drop(&mut self) {
        let _ = podman::podman(&["kube", "down", &self.file()]);
        let _ = podman::podman(&["volume", "prune", "--force"]);
        for name in &self.secrets {
            let _ = podman::podman(&["secret", "rm", name]);
        }
    }
}

/// Names of the containers kube play started for the manifests' workloads
/// (`<pod>-<container>`; the container is named `vidaud` in both).
fn workload_containers() -> Vec<String> {
    podman_ok(&["ps", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| n.ends_with("-vidaud"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_play_runs_the_embedded_statefulset_which_converts_a_clip() {
    let _one = serial().await;
    artifacts();
    let port = free_port();
    let play = Play::start(&manifests("embedded"), &[], &[], Some(port));
    let containers = workload_containers();
    assert_eq!(containers.len(), 1, "one pod: {containers:?}");
    let pod = Container {
        name: containers[0].clone(),
    };
    let api = api_of(&pod, port, false);
    api.wait_healthy(Duration::from_secs(90), || Ok(())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    walk_through(&api, dir.path()).await;
    // As its securityContext says: uid 900, a read-only root.
    assert_eq!(pod.exec_ok("id -u").trim(), "900");
    let (code, _) = pod.exec("touch /usr/x");
    assert_ne!(code, 0, "the root file system is read-only");
    std::mem::forget(pod); // kube down removes it
    drop(play);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_play_runs_the_cluster_deployment_whose_replicas_share_a_batch() {
    let _one = serial().await;
    artifacts();
    let names = Names::fresh();
    let node = front_door(&names).await;
    let options = NodeOptions::default().on(Backend::Cluster);
    let env = node_env(&names, &options, HOST);
    let value = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .expect("a setting")
    };
    let secret = serde_json::json!({
        "jwt-secret": common::JWT_SECRET,
        "mysql-url": value("VIDAUD_AUTH__MYSQL_URL"),
        "amqp-url": value("VIDAUD_QUEUE__AMQP_URL"),
        "mongodb-uri": value("VIDAUD_STORAGE__MONGODB_URI"),
    });
    // The names of this test's queues and databases, and what the suite
    // sets for every node (fast password hashing, its SMTP sink).
    let settings: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "VIDAUD_AUTH__JWT_SECRET"
                    | "VIDAUD_AUTH__MYSQL_URL"
                    | "VIDAUD_QUEUE__AMQP_URL"
                    | "VIDAUD_STORAGE__MONGODB_URI"
                    | "VIDAUD_BACKEND__DATA_DIR"
                    | "VIDAUD_BACKEND__KIND"
            )
        })
        .cloned()
        .collect();
    let play = Play::start(
        &manifests("cluster/base"),
        &[("vidaud-cluster", secret)],
        &settings,
        None,
    );
    let replicas = workload_containers();
    assert_eq!(replicas.len(), 2, "two replicas: {replicas:?}");

    let (email, token, jobs) = backlog(&node, 12).await;
    let finals = node.wait_all_final(&token, &jobs).await;
    let by = converted_by(&finals);
    assert_eq!(by.len(), 2, "both replicas converted some: {by:?}");
    let (done, failed) = node.assert_settled(&email, &finals, &[]).await;
    assert_eq!((done, failed), (jobs.len(), 0));
    eprintln!("the Deployment's two replicas: {by:?}");
    drop(play);
}
