//! Import from LINBO's (linuxmuster.net) `devices.csv`: `room;hostname;group;mac;ip;…`, no
//! header, `#` comments. The model is taken from the hardware group where it names a known
//! model (e.g. group `optiplex-7010` or `win10-optiplex-7010`).

use super::{Imported, InventoryError, slug};
use crate::domain::device::normalise_mac;

/// `models`: the ids of the workspace's models.
pub fn parse(name: &str, text: &str, models: &[String]) -> Result<Vec<Imported>, InventoryError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = t.split(';').map(str::trim).collect();
        let err = |col: usize, message: String| InventoryError::Input {
            file: name.to_string(),
            line: n + 1,
            col,
            message,
        };
        if f.len() < 5 {
            return Err(err(
                1,
                format!(
                    "{} field(s); LINBO rows are room;hostname;group;mac;ip;…",
                    f.len()
                ),
            ));
        }
        let col_of = |i: usize| f[..i].iter().map(|x| x.len() + 1).sum::<usize>() + 1;
        if f[1].is_empty() {
            return Err(err(col_of(1), "empty hostname".into()));
        }
        let mac = match f[3] {
            "" => None,
            m => Some(
                normalise_mac(m)
                    .ok_or_else(|| err(col_of(3), format!("MAC address \"{m}\" is malformed")))?,
            ),
        };
        let group = slug(f[2]);
        let model = models
            .iter()
            .filter(|m| group == **m || group.ends_with(&format!("-{m}")))
            .max_by_key(|m| m.len())
            .cloned();
        out.push(Imported {
            hostname: f[1].to_ascii_lowercase(),
            room: Some(slug(f[0])).filter(|r| !r.is_empty()),
            mac,
            ip: Some(f[4].to_string()).filter(|s| !s.is_empty() && s != "DHCP"),
            model,
            ..Imported::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_comments_and_model_from_group() {
        let text = "# LINBO\nb204;B204-PC01;win10-optiplex-7010;52:54:00:AA:BB:01;10.0.4.11;;;;classroom-studentcomputer;;1\n\
                    b204;b204-pc02;lab;52:54:00:aa:bb:02;DHCP\n";
        let got = parse("devices.csv", text, &["optiplex-7010".to_string()]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].hostname, "b204-pc01");
        assert_eq!(got[0].model.as_deref(), Some("optiplex-7010"));
        assert_eq!(got[0].ip.as_deref(), Some("10.0.4.11"));
        assert_eq!(got[1].model, None);
        assert_eq!(got[1].ip, None);
    }

    #[test]
    fn errors_are_located() {
        let e = parse("linbo.csv", "b204;pc1;g;zz:00;10.0.0.1\n", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "linbo.csv:1:12: MAC address \"zz:00\" is malformed");
        let e = parse("linbo.csv", "\nb204;pc1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("linbo.csv:2:1: 2 field(s)"), "{e}");
    }
}
