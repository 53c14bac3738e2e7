//! One connected SSH host (`RemoteHost`): commands with streamed output, exit status,
//! timeout and cancellation; uploads and downloads over `cat`, checked by sha256 on both ends.

use std::path::Path;

use async_trait::async_trait;
use russh::{ChannelMsg, Sig, client};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use super::{Pinned, label, shell};
use crate::ports::{
    ExecOutcome, ExecRequest, HostAddress, OutputSink, OutputStream, PortError, PortErrorKind,
    PortResult, RemoteHost,
};

/// A host parc is connected to. Dropping it closes the session and frees its slot.
pub struct SshHost {
    address: HostAddress,
    handle: client::Handle<Pinned>,
    _slot: OwnedSemaphorePermit,
}

impl SshHost {
    pub(super) fn new(
        address: HostAddress,
        handle: client::Handle<Pinned>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            address,
            handle,
            _slot: slot,
        }
    }

    pub fn address(&self) -> &HostAddress {
        &self.address
    }

    fn session_err(&self, what: &str, e: russh::Error) -> PortError {
        PortError::new(
            PortErrorKind::Other,
            format!("{what} on {}: {e}", label(&self.address)),
        )
        .with_source(e)
    }

    /// Kills the process group of a command that timed out or was cancelled. A channel
    /// signal request reaches at most the session's first process and servers may ignore it
    /// (OpenSSH 9.2 in the lab did), so the group of the command's shell (its PID recorded by
    /// [`shell::with_pid_file`]) is killed from a second channel.
    async fn kill_remote(&self, pid_file: &str) {
        let Ok(mut channel) = self.handle.channel_open_session().await else {
            return;
        };
        let cmd = shell::kill(self.address.shell, pid_file);
        if channel.exec(true, cmd.as_bytes()).await.is_err() {
            return;
        }
        let _ = channel.eof().await;
        let wait = async { while channel.wait().await.is_some() {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), wait).await;
    }

    /// Runs `command` with `stdin`, collecting its output; fails unless it exits 0.
    async fn run_checked(&self, command: String, what: &str) -> PortResult<ExecOutcome> {
        let req = ExecRequest {
            command,
            stdin: None,
            timeout: std::time::Duration::from_secs(600),
            cancel: Default::default(),
        };
        let out = self.exec(req, &mut |_, _| {}).await?;
        if !out.success() {
            return Err(PortError::new(
                PortErrorKind::Other,
                format!(
                    "{what} on {} failed (exit {:?}): {}",
                    label(&self.address),
                    out.exit_status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(out)
    }
}

fn first_word(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[async_trait]
impl RemoteHost for SshHost {
    fn name(&self) -> &str {
        &self.address.hostname
    }

    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> PortResult<ExecOutcome> {
        let pid_file = pid_file_name(self.address.shell);
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.session_err("opening a channel", e))?;
        channel
            .exec(
                true,
                shell::with_pid_file(self.address.shell, &pid_file, &req.command).as_bytes(),
            )
            .await
            .map_err(|e| self.session_err("starting a command", e))?;
        if let Some(stdin) = &req.stdin {
            channel
                .data(&stdin.0[..])
                .await
                .map_err(|e| self.session_err("writing stdin", e))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| self.session_err("closing stdin", e))?;

        let mut outcome = ExecOutcome {
            exit_status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        sink(OutputStream::Stdout, &data);
                        outcome.stdout.extend_from_slice(&data);
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        sink(OutputStream::Stderr, &data);
                        outcome.stderr.extend_from_slice(&data);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        outcome.exit_status = Some(exit_status);
                    }
                    Some(_) => {}
                    None => break,
                },
                () = &mut deadline => {
                    let _ = channel.signal(Sig::KILL).await;
                    let _ = channel.close().await;
                    self.kill_remote(&pid_file).await;
                    return Err(PortError::new(
                        PortErrorKind::Timeout,
                        format!(
                            "`{}` on {} did not finish within {} s; killed",
                            short(&req.command),
                            label(&self.address),
                            req.timeout.as_secs_f32()
                        ),
                    ));
                }
                () = req.cancel.cancelled() => {
                    let _ = channel.signal(Sig::TERM).await;
                    let _ = channel.close().await;
                    self.kill_remote(&pid_file).await;
                    return Err(PortError::new(
                        PortErrorKind::Cancelled,
                        format!("`{}` on {} was cancelled", short(&req.command), label(&self.address)),
                    ));
                }
            }
        }
        Ok(outcome)
    }

    async fn upload(&self, local: &Path, remote_path: &str) -> PortResult<String> {
        let io_err = |e: std::io::Error| {
            PortError::new(
                PortErrorKind::NotFound,
                format!("reading {}: {e}", local.display()),
            )
        };
        let local_sha = sha256_file(local).await.map_err(io_err)?;
        let part = format!("{remote_path}.parc-part");
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.session_err("opening a channel", e))?;
        let cmd = shell::receive(self.address.shell, &part);
        channel
            .exec(true, cmd.as_bytes())
            .await
            .map_err(|e| self.session_err("starting an upload", e))?;
        let file = tokio::fs::File::open(local).await.map_err(io_err)?;
        channel
            .data(file)
            .await
            .map_err(|e| self.session_err("sending a file", e))?;
        channel
            .eof()
            .await
            .map_err(|e| self.session_err("sending a file", e))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        if status != Some(0) {
            return Err(PortError::new(
                PortErrorKind::Other,
                format!(
                    "uploading {} to {}:{remote_path} failed: {}",
                    local.display(),
                    self.address.hostname,
                    String::from_utf8_lossy(&stderr).trim()
                ),
            ));
        }
        let remote_sha = first_word(&stdout);
        if remote_sha != local_sha {
            let _ = self
                .run_checked(
                    shell::remove(self.address.shell, &part),
                    "removing a bad upload",
                )
                .await;
            return Err(PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "upload of {} to {}:{remote_path} arrived corrupted: sha256 {remote_sha}, expected {local_sha}",
                    local.display(),
                    self.address.hostname
                ),
            ));
        }
        self.run_checked(
            shell::rename(self.address.shell, &part, remote_path),
            "finishing an upload",
        )
        .await?;
        Ok(remote_sha)
    }

    async fn download(&self, remote_path: &str, local: &Path) -> PortResult<String> {
        let io_err = |e: std::io::Error| {
            PortError::new(
                PortErrorKind::Other,
                format!("writing {}: {e}", local.display()),
            )
        };
        let part = local.with_extension("parc-part");
        let mut file = tokio::fs::File::create(&part).await.map_err(io_err)?;
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.session_err("opening a channel", e))?;
        channel
            .exec(
                true,
                shell::send(self.address.shell, remote_path).as_bytes(),
            )
            .await
            .map_err(|e| self.session_err("starting a download", e))?;
        let mut h = Sha256::new();
        let mut stderr = Vec::new();
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    h.update(&data[..]);
                    file.write_all(&data).await.map_err(io_err)?;
                }
                ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        file.sync_all().await.map_err(io_err)?;
        drop(file);
        if status != Some(0) {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(PortError::new(
                PortErrorKind::NotFound,
                format!(
                    "downloading {}:{remote_path}: {}",
                    self.address.hostname,
                    String::from_utf8_lossy(&stderr).trim()
                ),
            ));
        }
        let local_sha = hex::encode(h.finalize());
        let out = self
            .run_checked(
                shell::sha256(self.address.shell, remote_path),
                "hashing a download",
            )
            .await?;
        let remote_sha = first_word(&out.stdout);
        if remote_sha != local_sha {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(PortError::new(
                PortErrorKind::Integrity,
                format!(
                    "download of {}:{remote_path} arrived corrupted: sha256 {local_sha}, the host has {remote_sha}",
                    self.address.hostname
                ),
            ));
        }
        tokio::fs::rename(&part, local).await.map_err(io_err)?;
        Ok(local_sha)
    }
}

/// A fresh name for the file where a command's remote shell records its PID.
fn pid_file_name(sh: crate::ports::RemoteShell) -> String {
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    shell::pid_file(sh, &hex::encode(id))
}

/// The start of a command, for messages (commands can be long scripts).
fn short(command: &str) -> String {
    let line = command.lines().next().unwrap_or_default();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_owned()
    }
}
