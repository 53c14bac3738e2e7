//! Running a step on every workstation of a room: at most `limit` hosts at once, results in
//! the order of the hosts, one host's failure never stopping the others. Also the room-level
//! forms of join and verify the engine calls.

use std::future::Future;

use futures::StreamExt as _;

use super::StepError;
use super::join::{JoinRequest, Joined, ensure_room_ou, join_linux};
use super::report::HostVerdict;
use super::verify::{Expected, verify_host};
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
        verify_host(host.as_ref(), dir, &expected(&addr.hostname)).await
    })
    .await
    .into_iter()
    .map(|(host, r)| match r {
        Ok(Ok(())) => HostVerdict {
            host,
            findings: Vec::new(),
            error: None,
        },
        Ok(Err(findings)) => HostVerdict {
            host,
            findings,
            error: None,
        },
        Err(e) => HostVerdict {
            host,
            findings: Vec::new(),
            error: Some(error_chain(&e)),
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
