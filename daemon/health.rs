//! `vidaud health`: the node on this machine asked over HTTP whether it is
//! alive (`/health`) or ready (`/ready`), for health checks that can run
//! only a command: the OCI image's `HEALTHCHECK`, an exec probe, a script.
//! The address comes from the same configuration the node reads, so the
//! check follows `http.listen` wherever it is set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthArgs;
use crate::config;

#[derive(Debug, thiserror::Error)]
enum HealthError {
    #[error("http.listen {0:?} is not an address and port")]
    Listen(String),
    #[error("asking {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

pub fn run(args: HealthArgs) -> ExitCode {
    let base = match args.url.clone().map(Ok).unwrap_or_else(|| base_url(&args)) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("vidaud health: {e:#}");
            return ExitCode::from(2);
        }
    };
    let path = if args.ready { "/ready" } else { "/health" };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("vidaud health: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ask(&url, Duration::from_secs(args.timeout))) {
        Ok((status, body)) => {
            println!("{url}: {status} {}", body.trim());
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("vidaud health: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `http://<http.listen>`, a wildcard address replaced by loopback.
fn base_url(args: &HealthArgs) -> anyhow::Result<String> {
    let settings = config::load(&args.config)?;
    let listen = &settings.http.listen;
    let mut address: SocketAddr = listen
        .parse()
        .map_err(|_| HealthError::Listen(listen.clone()))?;
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{address}"))
}

async fn ask(url: &str, timeout: Duration) -> Result<(u16, String), HealthError> {
    let failed = |source| HealthError::Request {
        url: url.to_owned(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(failed)?;
    let response = client.get(url).send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(failed)?;
    Ok((status, body))
}
