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
    fn ps_doubles_single_quotes() {
        assert_eq!(ps("C:\\Program Files\\x's"), "'C:\\Program Files\\x''s'");
    }
}
