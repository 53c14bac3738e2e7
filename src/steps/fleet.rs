//! Running a step on every workstation of a room: at most `limit` hosts at once, results in
//! the order of the hosts, one host's failure never stopping the others. Also the room-level
//! forms of join and verify the engine calls.

use std::future::Future;

use futures::StreamExt as _;

use super::StepError;
use super::join::{JoinRequest, Joined, ensure_room_ou, join_linux};
use super::report::HostVerdict;
use super::verify::{Expected, check_host};
use crate::ports::{Directory, HostAddress, RemoteConnector, RemoteHost, SecretBytes};

/// Runs `f` on each host (connected through `connector`), at most `limit` at a time.
pub async fn for_each_host<T, F, Fut>(
    connector: &dyn RemoteConnector,
    hosts: &[HostAddress],
    limit: usize,
    f: F,
) -> Vec<(String, Result<T, StepError>)>
where
    F: Fn(Box<dyn RemoteHost>, HostAddress) -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let f = &f;
    futures::stream::iter(hosts.iter().cloned())
        .map(|addr| async move {
            let name = addr.hostname.clone();
            let result = match connector.connect(&addr).await {
                Ok(host) => f(host, addr).await,
                Err(source) => Err(StepError::Port {
                    host: name.clone(),
                    what: "connecting".into(),
                    source,
                }),
            };
            (name, result)
        })
        .buffered(limit.max(1))
        .collect()
        .await
}

/// What a room's join needs besides its hosts.
#[derive(Debug, Clone)]
pub struct RoomJoin {
    pub room: String,
    pub base_ou: String,
    /// DNS name of the domain.
    pub domain: String,
    pub account: String,
}

/// Joins every host of a room into `OU=<room>,<base OU>` (created first if missing).
pub async fn join_room(
    connector: &dyn RemoteConnector,
    dir: &dyn Directory,
    hosts: &[HostAddress],
    join: &RoomJoin,
    password: &SecretBytes,
    limit: usize,
) -> Result<Vec<(String, Result<Joined, StepError>)>, StepError> {
    ensure_room_ou(dir, &super::join::room_ou(&join.room, &join.base_ou)).await?;
    Ok(
        for_each_host(connector, hosts, limit, |host, addr| async move {
            let req = JoinRequest::for_host(
                &addr.hostname,
                &join.room,
                &join.base_ou,
                &join.domain,
                &join.account,
            );
            join_linux(host.as_ref(), &req, password).await
        })
        .await,
    )
}

/// Verifies every host of a room; `expected(hostname)` says what each should be.
pub async fn verify_room(
    connector: &dyn RemoteConnector,
    dir: &dyn Directory,
    hosts: &[HostAddress],
    expected: impl Fn(&str) -> Expected,
    limit: usize,
) -> Vec<HostVerdict> {
    let expected = &expected;
    for_each_host(connector, hosts, limit, |host, addr| async move {
        let checked = check_host(host.as_ref(), dir, &expected(&addr.hostname)).await;
        Ok((checked, super::report::now()))
    })
    .await
    .into_iter()
    .map(|(host, r)| match r {
        Ok((Ok(c), at)) => HostVerdict {
            host,
            findings: c.findings,
            observed: Some(c.observed),
            checked_at: Some(at),
            ..Default::default()
        },
        Ok((Err(e), at)) => HostVerdict {
            host,
            error: Some(error_chain(&e)),
            checked_at: Some(at),
            ..Default::default()
        },
        Err(e) => HostVerdict {
            host,
            error: Some(error_chain(&e)),
            checked_at: Some(super::report::now()),
            ..Default::default()
        },
    })
    .collect()
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::ports::{
        ExecOutcome, ExecRequest, OutputSink, PortError, PortErrorKind, PortResult,
    };

    /// A connector whose hosts count how many are busy at once; `down` never answers.
    #[derive(Default)]
    struct Counting {
        busy: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }

    struct Busy {
        name: String,
        busy: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl RemoteHost for Busy {
        fn name(&self) -> &str {
            &self.name
        }
        async fn exec(&self, _req: ExecRequest, _sink: OutputSink<'_>) -> PortResult<ExecOutcome> {
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.busy.fetch_sub(1, Ordering::SeqCst);
            Ok(ExecOutcome {
                exit_status: Some(0),
                stdout: self.name.clone().into_bytes(),
                stderr: vec![],
            })
        }
        async fn upload(&self, _l: &Path, _r: &str) -> PortResult<String> {
            Err(PortError::new(PortErrorKind::Other, "not used"))
        }
        async fn download(&self, _r: &str, _l: &Path) -> PortResult<String> {
            Err(PortError::new(PortErrorKind::Other, "not used"))
        }
    }

    #[async_trait]
    impl RemoteConnector for Counting {
        async fn connect(&self, host: &HostAddress) -> PortResult<Box<dyn RemoteHost>> {
            if host.hostname == "down" {
                return Err(PortError::new(
                    PortErrorKind::Unreachable,
                    "no route to down",
                ));
            }
            Ok(Box::new(Busy {
                name: host.hostname.clone(),
                busy: self.busy.clone(),
                peak: self.peak.clone(),
            }))
        }
    }

    fn addr(name: &str) -> HostAddress {
        HostAddress {
            hostname: name.into(),
            address: name.into(),
            port: 22,
            user: "root".into(),
            shell: crate::ports::RemoteShell::Posix,
        }
    }

    #[tokio::test]
    async fn at_most_limit_hosts_at_once_in_host_order_failures_kept_apart() {
        let conn = Counting::default();
        let hosts: Vec<_> = ["p1", "p2", "down", "p3", "p4", "p5"]
            .into_iter()
            .map(addr)
            .collect();
        let results = for_each_host(&conn, &hosts, 2, |host, _| async move {
            let out = super::super::run::run_ok(host.as_ref(), "probe", "true".into()).await?;
            Ok(String::from_utf8(out.stdout).unwrap())
        })
        .await;
        let names: Vec<_> = results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p1", "p2", "down", "p3", "p4", "p5"]);
        assert_eq!(results[0].1.as_ref().unwrap(), "p1");
        let err = results[2].1.as_ref().unwrap_err();
        assert_eq!(error_chain(err), "connecting on down: no route to down");
        assert_eq!(results[5].1.as_ref().unwrap(), "p5");
        assert_eq!(conn.peak.load(Ordering::SeqCst), 2);
    }
}
