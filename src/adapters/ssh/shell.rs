//! The command lines `SshHost` sends for its own plumbing (PID record, kill, upload,
//! download, hashing), for the two shells parc drives: POSIX sh (Linux) and PowerShell
//! (Windows' OpenSSH Server, whatever its default shell: every PowerShell line is sent as
//! `powershell.exe -EncodedCommand`, which cmd.exe and PowerShell both run unchanged).
//!
//! The PowerShell side is rendered and golden-tested here only: no Windows ran it.

use crate::ports::RemoteShell;
use crate::quote;

/// Where a command's shell records its PID, `id` being fresh per command.
pub fn pid_file(shell: RemoteShell, id: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("/tmp/.parc-exec-{id}"),
        RemoteShell::PowerShell => format!("$env:TEMP\\.parc-exec-{id}"),
    }
}

/// `command` with its PID recorded in `pid_file` and the record removed when it ends. Exit
/// status and output are the command's (PowerShell: its `exit N`, or 1 on a terminating
/// error, or the last native command's exit code).
pub fn with_pid_file(shell: RemoteShell, pid_file: &str, command: &str) -> String {
    match shell {
        RemoteShell::Posix => {
            format!("echo $$ > {pid_file}; trap 'rm -f {pid_file}' EXIT; {command}")
        }
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "$ErrorActionPreference = 'Stop'\n\
             $parcPid = \"{pid_file}\"\n\
             Set-Content -LiteralPath $parcPid -Value $PID\n\
             try {{\n{command}\n}} finally {{ Remove-Item -LiteralPath $parcPid -ErrorAction SilentlyContinue }}\n\
             if ($LASTEXITCODE) {{ exit $LASTEXITCODE }}"
        )),
    }
}

/// Kills the command whose PID is in `pid_file`, with its children.
pub fn kill(shell: RemoteShell, pid_file: &str) -> String {
    match shell {
        RemoteShell::Posix => format!(
            "p=$(cat {pid_file} 2>/dev/null) && kill -KILL -- -\"$p\" 2>/dev/null; rm -f {pid_file}"
        ),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "$f = \"{pid_file}\"\n\
             $p = [int](Get-Content -LiteralPath $f -ErrorAction SilentlyContinue)\n\
             if ($p) {{\n\
             Get-CimInstance Win32_Process -Filter \"ParentProcessId=$p\" | ForEach-Object {{ Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue }}\n\
             Stop-Process -Id $p -Force -ErrorAction SilentlyContinue\n\
             }}\n\
             Remove-Item -LiteralPath $f -ErrorAction SilentlyContinue"
        )),
    }
}

/// Writes stdin to `path` (creating its folder), then prints its sha256 (lower-case hex).
pub fn receive(shell: RemoteShell, path: &str) -> String {
    match shell {
        RemoteShell::Posix => format!(
            "set -e; mkdir -p \"$(dirname {p})\"; cat > {p}; sha256sum {p}",
            p = quote::sh(path)
        ),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "$ErrorActionPreference = 'Stop'\n\
             $p = {p}\n\
             New-Item -ItemType Directory -Force -Path (Split-Path -Parent $p) | Out-Null\n\
             $in = [Console]::OpenStandardInput()\n\
             $f = [IO.File]::Create($p)\n\
             try {{ $in.CopyTo($f) }} finally {{ $f.Close() }}\n\
             (Get-FileHash -Algorithm SHA256 -LiteralPath $p).Hash.ToLower()",
            p = quote::ps(path)
        )),
    }
}

/// Writes `path` to stdout, as bytes.
pub fn send(shell: RemoteShell, path: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("cat {}", quote::sh(path)),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "$ErrorActionPreference = 'Stop'\n\
             $f = [IO.File]::OpenRead({})\n\
             $out = [Console]::OpenStandardOutput()\n\
             try {{ $f.CopyTo($out); $out.Flush() }} finally {{ $f.Close() }}",
            quote::ps(path)
        )),
    }
}

/// Prints the sha256 of `path` (lower-case hex first).
pub fn sha256(shell: RemoteShell, path: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("sha256sum {}", quote::sh(path)),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "(Get-FileHash -Algorithm SHA256 -LiteralPath {}).Hash.ToLower()",
            quote::ps(path)
        )),
    }
}

/// Removes `path` if present.
pub fn remove(shell: RemoteShell, path: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("rm -f {}", quote::sh(path)),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "Remove-Item -LiteralPath {} -Force -ErrorAction SilentlyContinue",
            quote::ps(path)
        )),
    }
}

/// Moves `from` to `to`, replacing it.
pub fn rename(shell: RemoteShell, from: &str, to: &str) -> String {
    match shell {
        RemoteShell::Posix => format!("mv -f {} {}", quote::sh(from), quote::sh(to)),
        RemoteShell::PowerShell => quote::powershell_encoded(&format!(
            "Move-Item -LiteralPath {} -Destination {} -Force",
            quote::ps(from),
            quote::ps(to)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSI: &str = r"C:\ProgramData\parc\installers\GeoGebra_6.0.msi";

    /// The script inside a `powershell.exe -EncodedCommand` line.
    fn script(line: &str) -> String {
        quote::powershell_decoded(line).unwrap_or_else(|| panic!("not an encoded command: {line}"))
    }

    #[test]
    fn posix_lines_are_unchanged() {
        assert_eq!(
            with_pid_file(RemoteShell::Posix, "/tmp/.parc-exec-1", "hostname"),
            "echo $$ > /tmp/.parc-exec-1; trap 'rm -f /tmp/.parc-exec-1' EXIT; hostname"
        );
        assert_eq!(
            receive(RemoteShell::Posix, "/var/cache/x.deb.parc-part"),
            "set -e; mkdir -p \"$(dirname '/var/cache/x.deb.parc-part')\"; cat > '/var/cache/x.deb.parc-part'; sha256sum '/var/cache/x.deb.parc-part'"
        );
        assert_eq!(send(RemoteShell::Posix, "/etc/x"), "cat '/etc/x'");
    }

    #[test]
    fn powershell_golden() {
        let ps = RemoteShell::PowerShell;
        let pid = pid_file(ps, "00ff");
        let all = [
            ("exec", script(&with_pid_file(ps, &pid, "hostname"))),
            ("kill", script(&kill(ps, &pid))),
            ("receive", script(&receive(ps, &format!("{MSI}.parc-part")))),
            ("send", script(&send(ps, MSI))),
            ("sha256", script(&sha256(ps, MSI))),
            ("remove", script(&remove(ps, MSI))),
            (
                "rename",
                script(&rename(ps, &format!("{MSI}.parc-part"), MSI)),
            ),
        ]
        .iter()
        .map(|(k, v)| format!("### {k}\n{v}\n"))
        .collect::<String>();
        crate::golden::check("src/adapters/ssh/golden-powershell.txt", &all);
    }

    #[test]
    fn a_quote_in_a_path_stays_inside_its_string() {
        let s = script(&receive(RemoteShell::PowerShell, r"C:\Users\l'élève\x.msi"));
        assert!(s.contains(r"$p = 'C:\Users\l''élève\x.msi'"), "{s}");
    }
}
