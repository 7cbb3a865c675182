//! `vidaud user add|passwd|disable|enable|limits|delete|list`: accounts managed by an
//! operator (how accounts are made when registration is closed). It writes
//! the same table the auth actor reads, with the same argon2id cost and
//! password rules, so a user made here logs in like any other; a new
//! password or a disabled account revokes the user's tokens on every node
//! (within the nodes' 2 s refresh), as the HTTP API's do.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use vidaud_actors::auth::{AuthError, HashCost, check_email, check_rules, password_hash};
use vidaud_actors::backends::{Backends, User, UserDirectory, UsersError, chain};

use crate::cli::{UserAction, UserArgs};
use crate::config;

pub fn run(args: UserArgs) -> ExitCode {
    let settings = match config::load(&args.config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("vidaud user: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vidaud user: {e}");
            return ExitCode::from(1);
        }
    };
    let users = match Backends::user_directory(&settings) {
        Ok(users) => users,
        Err(e) => {
            eprintln!("vidaud user: {}", chain(&e));
            return ExitCode::from(1);
        }
    };
    let cost = HashCost {
        memory_kib: settings.auth.argon2_memory_kib,
        iterations: settings.auth.argon2_iterations,
    };
    let outcome = match args.action {
        UserAction::Add { email, admin } => {
            let email = email.trim().to_owned();
            let password = match read_password(&email) {
                Ok(password) => password,
                Err(code) => return code,
            };
            runtime.block_on(add(users.as_ref(), email, &password, admin, cost))
        }
        UserAction::Passwd { email } => {
            let password = match read_password(&email) {
                Ok(password) => password,
                Err(code) => return code,
            };
            runtime.block_on(async {
                let hash = password_hash(&password, cost).map_err(|e| Failed(1, chain(&e)))?;
                let changed = users.change_password(&email, &hash).await;
                found(changed, &email, "password set; earlier tokens revoked")
            })
        }
        UserAction::Disable { email } => runtime.block_on(async {
            let revoked = users.revoke(&email, Some(true)).await;
            found(revoked, &email, "disabled; its tokens revoked")
        }),
        UserAction::Enable { email } => runtime.block_on(async {
            let revoked = users.revoke(&email, Some(false)).await;
            found(revoked, &email, "enabled")
        }),
        UserAction::Delete { email } => runtime.block_on(async {
            found(
                users.delete(&email).await,
                &email,
                "deleted; its tokens revoked, its data erased by the running nodes \
                 within seconds (by the next retention sweep if none runs)",
            )
        }),
        UserAction::Limits {
            email,
            quota_bytes,
            max_active_jobs,
        } => runtime.block_on(set_limits(
            users.as_ref(),
            &email,
            quota_bytes.as_deref(),
            max_active_jobs.as_deref(),
        )),
        UserAction::List => runtime.block_on(list(users.as_ref())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(code, message)) => {
            eprintln!("vidaud user: {message}");
            ExitCode::from(code)
        }
    }
}

/// An exit code and what to say.
struct Failed(u8, String);

/// The password from the first line of stdin, checked against the rules.
fn read_password(email: &str) -> Result<String, ExitCode> {
    if std::io::stdin().is_terminal() {
        eprintln!("password for {email} (one line; it is echoed, prefer a pipe):");
    }
    let mut password = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut password) {
        eprintln!("vidaud user: cannot read the password from stdin: {e}");
        return Err(ExitCode::from(2));
    }
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if let Err(e) = check_email(email).and_then(|()| check_rules(&password, email)) {
        eprintln!("vidaud user: {e}");
        return Err(ExitCode::from(2));
    }
    Ok(password)
}

async fn add(
    users: &dyn UserDirectory,
    email: String,
    password: &str,
    admin: bool,
    cost: HashCost,
) -> Result<(), Failed> {
    let hash = password_hash(password, cost).map_err(|e| Failed(1, chain(&e)))?;
    let user = User {
        email: email.clone(),
        password_hash: hash,
        admin,
        ..User::default()
    };
    match users.create(&user).await {
        Ok(true) => {
            let role = if admin { "admin" } else { "user" };
            println!("created {role} {email}");
            Ok(())
        }
        Ok(false) => Err(Failed(
            3,
            format!("a user with the e-mail {email} already exists"),
        )),
        Err(e) => Err(Failed(1, chain(&AuthError::from(e)))),
    }
}

/// Says `done` for `email` if the change found the user (exit 4 if not).
fn found(changed: Result<bool, UsersError>, email: &str, done: &str) -> Result<(), Failed> {
    match changed {
        Ok(true) => {
            println!("{email}: {done}");
            Ok(())
        }
        Ok(false) => Err(Failed(4, format!("no user with the e-mail {email}"))),
        Err(e) => Err(Failed(1, chain(&AuthError::from(e)))),
    }
}

/// A limit as given: a number, or `default` (the node's).
fn limit(given: &str) -> Result<Option<u64>, Failed> {
    match given {
        "default" => Ok(None),
        n => n.parse().map(Some).map_err(|_| {
            Failed(
                2,
                format!("a limit is a number (0: none) or `default`, not {n:?}"),
            )
        }),
    }
}

async fn set_limits(
    users: &dyn UserDirectory,
    email: &str,
    quota_bytes: Option<&str>,
    max_active_jobs: Option<&str>,
) -> Result<(), Failed> {
    let unavailable = |e: UsersError| Failed(1, chain(&AuthError::from(e)));
    let Some(user) = users.find(email).await.map_err(unavailable)? else {
        return Err(Failed(4, format!("no user with the e-mail {email}")));
    };
    let mut limits = user.limits;
    if let Some(given) = quota_bytes {
        limits.quota_bytes = limit(given)?;
    }
    if let Some(given) = max_active_jobs {
        limits.max_active_jobs = limit(given)?;
    }
    let shown = |l: Option<u64>| l.map_or_else(|| "default".to_owned(), |n| n.to_string());
    found(
        users.set_limits(email, limits).await,
        email,
        &format!(
            "quota_bytes {}, max_active_jobs {}",
            shown(limits.quota_bytes),
            shown(limits.max_active_jobs)
        ),
    )
}

async fn list(users: &dyn UserDirectory) -> Result<(), Failed> {
    let mut after: Option<String> = None;
    loop {
        let page = users
            .page(after.as_deref(), 500)
            .await
            .map_err(|e| Failed(1, chain(&AuthError::from(e))))?;
        for user in page.iter().filter(|u| !u.deleted) {
            let role = if user.admin { "admin" } else { "user" };
            let state = if user.disabled { "disabled" } else { "active" };
            println!("{}\t{role}\t{state}", user.email);
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.email.clone()),
            _ => return Ok(()),
        }
    }
}
