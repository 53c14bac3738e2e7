//! `site.toml`: the lycée, its domain and its deployment endpoint.

use super::finding::{Finding, Source};
use super::toml_read::{Ctx, Sp, TableReader};

/// The lycée a workspace describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: Sp<String>,
    /// UAI (ex-RNE) code: 7 digits and a letter, e.g. `0840042X`.
    pub uai: Sp<String>,
    pub city: Option<Sp<String>>,
    /// The STIL sector the lycée belongs to.
    pub sector: Sp<String>,
    pub domain: Domain,
    pub endpoint: Endpoint,
}

/// The Active Directory domain of the pedagogical network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Kerberos realm, upper case (`MISTRAL.LAN`).
    pub realm: Sp<String>,
    /// NetBIOS (short) domain name (`MISTRAL`).
    pub netbios: Sp<String>,
    /// Base OU for computers; each room goes to `OU=<room>,<computers_ou>`.
    pub computers_ou: Sp<String>,
    pub join_account: Sp<String>,
    /// Name of the secret holding the join account's password.
    pub join_password_secret: Option<Sp<String>>,
}

/// How workstations are imaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// parc's own PXE/HTTP endpoint (`parc serve`).
    Pxe {
        address: Sp<String>,
        http_port: u16,
        proxy_dhcp: bool,
    },
    /// A Windows Deployment Services server.
    Wds { host: Sp<String> },
}

/// Parses `site.toml`. `None` when it is too broken to use; findings say why.
pub fn parse(src: &Source) -> (Option<Site>, Vec<Finding>) {
    let ctx = Ctx::new(src);
    let site = ctx.parse().and_then(|doc| {
        let root = TableReader::root(&ctx, &doc, "site.toml");
        let lycee = root.table("lycee", true);
        let domain = root.table("domain", true);
        let endpoint = root.table("endpoint", true);
        root.finish();
        let lycee = lycee.and_then(|l| {
            let name = l.text("name", true);
            let uai = l.text("uai", true);
            let city = l.text("city", false);
            let sector = l.text("sector", true);
            l.finish();
            if let Some(u) = &uai {
                if !valid_uai(u) {
                    ctx.push(
                        Finding::error(
                            u.at.clone(),
                            "uai",
                            format!("UAI code \"{}\" is malformed", u.value),
                        )
                        .hint(
                            "a UAI is 7 digits (or 2A/2B + 5 digits) and a letter, e.g. 0840042X",
                        ),
                    );
                }
            }
            Some((name?, uai?, city, sector?))
        });
        let domain = domain.and_then(|d| parse_domain(&ctx, d));
        let endpoint = endpoint.and_then(parse_endpoint);
        let (name, uai, city, sector) = lycee?;
        Some(Site {
            name,
            uai,
            city,
            sector,
            domain: domain?,
            endpoint: endpoint?,
        })
    });
    (site, ctx.into_findings())
}

fn parse_domain(ctx: &Ctx, d: TableReader) -> Option<Domain> {
    let realm = d.text("realm", true);
    let netbios = d.text("netbios", true);
    let computers_ou = d.text("computers_ou", true);
    let join_account = d.text("join_account", true);
    let join_password_secret = d.secret_ref("join_password", false);
    d.finish();
    if let Some(r) = &realm {
        if r.value != r.value.to_uppercase() || !r.value.contains('.') {
            ctx.push(
                Finding::error(
                    r.at.clone(),
                    "realm",
                    format!("realm \"{}\" must be an upper-case DNS name", r.value),
                )
                .hint(format!("e.g. \"{}\"", r.value.to_uppercase())),
            );
        }
    }
    if let Some(nb) = &netbios {
        if nb.value.len() > 15 || nb.value.contains('.') {
            ctx.push(Finding::error(
                nb.at.clone(),
                "netbios",
                format!(
                    "NetBIOS name \"{}\" must be at most 15 characters without dots",
                    nb.value
                ),
            ));
        }
    }
    if let Some(ou) = &computers_ou {
        if !valid_dn(&ou.value) {
            ctx.push(
                Finding::error(
                    ou.at.clone(),
                    "dn",
                    format!("\"{}\" is not a distinguished name", ou.value),
                )
                .hint("e.g. \"OU=Salles,OU=Pedagogie,DC=mistral,DC=lan\""),
            );
        }
    }
    Some(Domain {
        realm: realm?,
        netbios: netbios?,
        computers_ou: computers_ou?,
        join_account: join_account?,
        join_password_secret,
    })
}

fn parse_endpoint(e: TableReader) -> Option<Endpoint> {
    let kind = e.choice("kind", true, &["pxe", "wds"]);
    let out = match kind.as_deref().copied() {
        Some("pxe") => {
            let address = e.text("address", true);
            let port = e
                .int("http_port", false, 1, 65535)
                .map_or(8000, |p| p.value as u16);
            let proxy_dhcp = e.boolean("proxy_dhcp").is_some_and(|b| b.value);
            address.map(|address| Endpoint::Pxe {
                address,
                http_port: port,
                proxy_dhcp,
            })
        }
        Some("wds") => e.text("host", true).map(|host| Endpoint::Wds { host }),
        _ => None,
    };
    e.finish();
    out
}

/// A UAI: 7 characters (digits, or 2A/2B then digits) and a check letter.
pub fn valid_uai(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 8 || !b[7].is_ascii_uppercase() {
        return false;
    }
    let head = &s[..7];
    head.bytes().all(|c| c.is_ascii_digit())
        || ((head.starts_with("2A") || head.starts_with("2B"))
            && head[2..].bytes().all(|c| c.is_ascii_digit()))
}

/// A loose check of an LDAP DN: comma-separated `attr=value` parts with known attributes.
pub fn valid_dn(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|part| {
            part.split_once('=').is_some_and(|(k, v)| {
                matches!(
                    k.trim().to_ascii_uppercase().as_str(),
                    "OU" | "DC" | "CN" | "O"
                ) && !v.trim().is_empty()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uai_codes() {
        assert!(valid_uai("0840042X"));
        assert!(valid_uai("2A00012B"));
        assert!(!valid_uai("084004X"));
        assert!(!valid_uai("08400421"));
    }

    #[test]
    fn dns() {
        assert!(valid_dn("OU=Salles,DC=mistral,DC=lan"));
        assert!(!valid_dn("Salles/mistral"));
    }
}
