//! Quoting of words for the remote shells parc drives: POSIX sh and PowerShell. Everything
//! parc interpolates into a remote command line goes through here.

/// Quotes `s` as one POSIX shell word (`'…'`, with `'` written as `'\''`).
pub fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes `s` as one PowerShell single-quoted string (`'` doubled).
pub fn ps(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The command line that runs PowerShell `script` whatever the remote default shell is (cmd or
/// PowerShell): `powershell.exe … -EncodedCommand <base64 of the UTF-16LE script>`, so no
/// character of the script is ever reinterpreted by an outer shell.
pub fn powershell_encoded(script: &str) -> String {
    use base64::Engine as _;
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    format!(
        "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {}",
        base64::engine::general_purpose::STANDARD.encode(utf16)
    )
}

/// The script of a [`powershell_encoded`] line (for tests and logs), `None` for another line.
pub fn powershell_decoded(line: &str) -> Option<String> {
    use base64::Engine as _;
    let b64 = line.rsplit_once(" -EncodedCommand ")?.1;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_quotes_single_quotes_and_spaces() {
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn powershell_encoded_round_trips() {
        let script = "Write-Output 'élève ☃'\n$x = \"a b\"; exit 3";
        let line = powershell_encoded(script);
        assert!(line.starts_with("powershell.exe -NoProfile -NonInteractive "));
        assert!(!line.contains('\'') && !line.contains('$'));
        assert_eq!(powershell_decoded(&line).as_deref(), Some(script));
    }

    #[test]
    fn ps_doubles_single_quotes() {
        assert_eq!(ps("C:\\Program Files\\x's"), "'C:\\Program Files\\x''s'");
    }
}
