//! `vidaud user add`: how accounts are made when registration is closed.
//! It writes the same table the auth actor reads, with the same argon2id
//! cost and password rules, so a user made here logs in like any other.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use vidaud_actors::auth::{AuthError, HashCost, check_email, check_rules, password_hash};
use vidaud_actors::backends::{Backends, User, chain};

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
    let UserAction::Add { email, admin } = args.action;
    let email = email.trim().to_owned();
    if std::io::stdin().is_terminal() {
        eprintln!("password for {email} (one line; it is echoed, prefer a pipe):");
    }
    let mut password = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut password) {
        eprintln!("vidaud user: cannot read the password from stdin: {e}");
        return ExitCode::from(2);
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if let Err(e) = check_email(&email).and_then(|()| check_rules(password, &email)) {
        eprintln!("vidaud user: {e}");
        return ExitCode::from(2);
    }
    let cost = HashCost {
        memory_kib: settings.auth.argon2_memory_kib,
        iterations: settings.auth.argon2_iterations,
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
    let created = runtime.block_on(async {
        let users = Backends::user_directory(&settings).map_err(|e| chain(&e))?;
        let hash = password_hash(password, cost).map_err(|e| chain(&e))?;
        let user = User {
            email: email.clone(),
            password_hash: hash,
            admin,
            ..User::default()
        };
        users
            .create(&user)
            .await
            .map_err(|e| chain(&AuthError::from(e)))
    });
    match created {
        Ok(true) => {
            let role = if admin { "admin" } else { "user" };
            println!("created {role} {email}");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("vidaud user: a user with the e-mail {email} already exists");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("vidaud user: {e}");
            ExitCode::from(1)
        }
    }
}
