//! `parc secret set NAME` (value from standard input, never from the command line, never
//! echoed) and `parc secret list` (names only).

use std::io::{IsTerminal, Read, Write};

use crate::exit::{CliError, Status};
use crate::secrets::{SecretError, SecretStore};
use crate::workspace::WorkspaceDir;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store a secret; the value is read from standard input (typed without echo on a terminal).
    Set {
        name: String,
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
    /// List the names of stored secrets (never their values).
    List {
        #[command(flatten)]
        ws: super::WorkspaceArg,
    },
}

pub fn run(cmd: Command) -> Result<Status, CliError> {
    match cmd {
        Command::Set { name, ws } => {
            let dir = WorkspaceDir::open(&ws.workspace).map_err(CliError::user)?;
            let store = SecretStore::new(&dir.state_dir());
            if !crate::domain::toml_read::valid_secret_name(&name) {
                return Err(CliError::user(SecretError::BadName(name)));
            }
            let value = read_value(&name).map_err(CliError::internal)?;
            store.set(&name, &value).map_err(|e| match e {
                SecretError::Empty | SecretError::BadName(_) => CliError::user(e),
                other => CliError::internal(other),
            })?;
            eprintln!(
                "secret \"{name}\" stored in {}",
                dir.state_dir().join("secrets").display()
            );
            Ok(Status::Success)
        }
        Command::List { ws } => {
            let dir = WorkspaceDir::open(&ws.workspace).map_err(CliError::user)?;
            for n in SecretStore::new(&dir.state_dir())
                .list()
                .map_err(CliError::internal)?
            {
                println!("{n}");
            }
            Ok(Status::Success)
        }
    }
}

/// Reads the value: from a terminal, one line typed without echo; from a pipe, everything, less
/// one trailing newline.
fn read_value(name: &str) -> std::io::Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("value of secret \"{name}\" (not shown): ");
        std::io::stderr().flush()?;
        let _echo_off = EchoOff::new();
        let mut line = String::new();
        stdin.read_line(&mut line)?;
        eprintln!();
        Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
    } else {
        let mut v = Vec::new();
        stdin.lock().read_to_end(&mut v)?;
        if v.ends_with(b"\n") {
            v.pop();
            if v.ends_with(b"\r") {
                v.pop();
            }
        }
        Ok(v)
    }
}

/// Turns terminal echo off for as long as it lives.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled, termios.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}
