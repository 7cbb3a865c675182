//! Two nodes consuming one backlog: the backlog is uploaded while both are
//! drained, both are resumed at once, and the job records say which node
//! converted each job. Each node's prefetch is bounded, so neither may
//! hoard the queue.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::admin::Admin;
use crate::api::{Api, User};
use crate::report::Target;

pub struct Share {
    pub jobs: usize,
    pub by_node: BTreeMap<String, usize>,
    pub elapsed: Duration,
}

pub async fn run(
    api: &Api,
    users: &[User],
    clip: &Path,
    jobs: usize,
    nodes: &[Admin],
) -> Result<Share> {
    for node in nodes {
        node.drain().await?;
    }
    let mut ids = Vec::new();
    for n in 0..jobs {
        let user = &users[n % users.len()];
        ids.push((user, api.upload(&user.token, clip).await?));
    }
    let began = std::time::Instant::now();
    futures::future::try_join_all(nodes.iter().map(Admin::resume)).await?;
    let mut by_node = BTreeMap::new();
    for (user, id) in &ids {
        let job = api
            .wait_final(&user.token, id, Duration::from_secs(600))
            .await?;
        let node = match job.state.as_str() {
            "done" => job.node.unwrap_or_else(|| "(none)".into()),
            other => format!("({other})"),
        };
        *by_node.entry(node).or_default() += 1;
    }
    let elapsed = began.elapsed();
    for (user, id) in &ids {
        api.delete(&user.token, id).await?;
    }
    Ok(Share {
        jobs,
        by_node,
        elapsed,
    })
}

impl Share {
    pub fn report(&self) {
        println!(
            "two nodes, one backlog of {} jobs, done in {:.2} s:",
            self.jobs,
            self.elapsed.as_secs_f64()
        );
        let mut shares = Vec::new();
        for (node, count) in &self.by_node {
            let share = *count as f64 / self.jobs as f64 * 100.0;
            println!("  {node}: {count} jobs ({share:.0} %)");
            shares.push(share);
        }
        let largest = shares.iter().copied().fold(0.0, f64::max);
        let smallest = if shares.len() < 2 {
            0.0
        } else {
            shares.iter().copied().fold(100.0, f64::min)
        };
        Target::at_least("  smallest node share, %", smallest, 40.0).print();
        Target::at_most("  largest node share, %", largest, 60.0).print();
    }
}
