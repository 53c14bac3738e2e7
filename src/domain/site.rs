//! `site.toml`: the lycée, its domain and its deployment endpoint.

use super::finding::{Finding, Severity, Source};
use super::multicast::{GroupRange, MulticastPolicy};
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
    /// How workstations are switched on (`[power]`; wake-on-LAN by default).
    pub power: Power,
    /// What Windows workstations get at their first boot (`[windows]`).
    pub windows: Option<WindowsSettings>,
    /// Where workstations are deployed from (`[deploy]`; parc's own endpoint by default).
    pub deploy: Option<WdsBackend>,
    /// Whether parc's endpoint deploys a room by multicast (`[deploy]`; on by default).
    pub multicast: MulticastPolicy,
    /// Where parc keeps its journal (`[state]`; the workspace's SQLite file by default).
    pub state: StateBackend,
}

/// `[state]`: where the journal (runs, step attempts, room locks) lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateBackend {
    /// `<workspace>/.parc/journal.db` (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several lycées (`backend = "postgres"`); boxed, the
    /// default variant being empty.
    Postgres(Box<PostgresState>),
}

/// `[state] backend = "postgres"`: the database and the lycée's share of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresState {
    /// A libpq connection URL (`postgresql://parc@db.example/parc`, or a unix socket:
    /// `postgresql://parc@/parc?host=/run/postgresql`); never holds a password.
    pub url: Sp<String>,
    /// Name of the secret holding the role's password (none: the server does not ask).
    pub password_secret: Option<Sp<String>>,
    /// A PEM file of CA certificates (relative to the workspace) trusted, besides the
    /// system's, to sign the server's certificate when the connection uses TLS (`ca`). Read
    /// by `crate::state::choose`, not here: the domain touches no file.
    pub ca: Option<Sp<String>>,
    /// The lycée's UAI (`[lycee] uai`): every row is keyed by it, a room lock is per
    /// (lycée, room).
    pub lycee: String,
}

/// `[deploy] backend = "wds"`: deploys go through the lycée's WDS server (the master's format
/// and capture stay on parc's endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WdsBackend {
    /// The WDS server's address (its OpenSSH Server).
    pub server: Sp<String>,
    /// The account parc's key logs in as (default `Administrator`).
    pub user: String,
    /// The WDS image group (default `parc`).
    pub image_group: String,
    /// Folder on the server the WIMs are uploaded to (default `C:\RemoteInstall\parc`).
    pub wim_folder: String,
    /// Import images with `-Multicast` (default true).
    pub multicast: bool,
}

/// `[windows]`: the answer file's settings common to the lycée's Windows workstations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsSettings {
    /// Secret holding the workstations' local administrator password.
    pub admin_password_secret: Sp<String>,
    /// Windows time zone id (default `Romance Standard Time`: Paris).
    pub time_zone: String,
    /// UI, system and user locale (default `fr-FR`).
    pub locale: String,
    /// Keyboard layout (default `040c:0000040c`: French AZERTY).
    pub input_locale: String,
}

/// How the computer accounts of Windows workstations are provisioned for an offline join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineJoinTool {
    /// Samba's `net offlinejoin provision`, on a Samba AD DC.
    Samba,
    /// `djoin.exe /provision`, on a Windows DC.
    Windows,
}

/// `offline_join` of `[domain]`: the tool, run on the DC through an SSH session of `ssh_user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineJoin {
    pub tool: Sp<OfflineJoinTool>,
    /// The DC account parc's SSH key logs in as (default `root` on Samba).
    pub ssh_user: Option<Sp<String>>,
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
    /// The domain controller parc administers computer objects on, over the network.
    pub controller: Option<Controller>,
    /// How Windows workstations' accounts are provisioned (an admin session on the DC).
    pub offline_join: Option<OfflineJoin>,
}

/// A domain controller (Windows AD or Samba AD), reached by LDAP over TLS and Kerberos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Its address (or DNS name) on the pedagogical network.
    pub address: Sp<String>,
    pub ldap: LdapMode,
    /// PEM file of the CA that signed the DC's certificate (workspace-relative or absolute);
    /// the system's roots when absent.
    pub ca_file: Option<Sp<String>>,
    /// The account parc creates OUs and computer objects with (default: the join account).
    pub admin_account: Option<Sp<String>>,
    /// Secret holding that account's password (default: the join password's secret).
    pub admin_password_secret: Option<Sp<String>>,
}

/// How parc's LDAP connection to the DC is protected (simple binds need TLS on AD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapMode {
    /// LDAP over TLS, port 636.
    Ldaps,
    /// LDAP on port 389, upgraded by StartTLS.
    StartTls,
}

/// How parc takes part in DHCP on the serving segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpSetting {
    /// proxyDHCP beside the lycée's DHCP server: parc answers PXE clients only (default).
    Proxy,
    /// parc's own DHCP server, handing out `first..=last` (an isolated segment only).
    Full { first: Sp<String>, last: Sp<String> },
    /// The lycée's DHCP server carries options 66/67 pointing at parc; parc only checks it.
    External,
}

impl DhcpSetting {
    pub fn word(&self) -> &'static str {
        match self {
            DhcpSetting::Proxy => "proxy",
            DhcpSetting::Full { .. } => "full",
            DhcpSetting::External => "external",
        }
    }
}

/// How workstations are switched on. Before any of this, parc restarts a workstation that
/// answers over SSH; power control is for those that do not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Power {
    /// Send wake-on-LAN magic packets (default true).
    pub wake_on_lan: bool,
    /// Where they go; default: the broadcast address of the serving interface's subnet.
    pub broadcast: Option<Sp<String>>,
}

/// How workstations are imaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// parc's own PXE/HTTP endpoint (`parc serve`).
    Pxe {
        /// The address parc serves on (the PEDA VLAN).
        address: Sp<String>,
        /// The interface holding it; found from the address when absent.
        interface: Option<Sp<String>>,
        http_port: u16,
        dhcp: DhcpSetting,
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
        let power = root.table("power", false);
        let windows = root.table("windows", false);
        let deploy = root.table("deploy", false);
        let state = root.table("state", false);
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
        let endpoint = endpoint.and_then(|e| parse_endpoint(&ctx, e));
        let power = match power {
            Some(p) => parse_power(&ctx, p),
            None => Power {
                wake_on_lan: true,
                broadcast: None,
            },
        };
        let windows = windows.and_then(|w| {
            let admin_password_secret = w.secret_ref("admin_password", true);
            let text = |k, d: &str| w.text(k, false).map_or_else(|| d.to_owned(), |t| t.value);
            let time_zone = text("time_zone", "Romance Standard Time");
            let locale = text("locale", "fr-FR");
            let input_locale = text("input_locale", "040c:0000040c");
            w.finish();
            Some(WindowsSettings {
                admin_password_secret: admin_password_secret?,
                time_zone,
                locale,
                input_locale,
            })
        });
        let mut multicast = MulticastPolicy::default();
        let deploy = deploy.and_then(|d| {
            let backend = d.choice("backend", false, &["pxe", "wds"]);
            let server = d.text("wds_server", false);
            let text = |k, def: &str| d.text(k, false).map_or_else(|| def.to_owned(), |t| t.value);
            let user = text("wds_user", "Administrator");
            let image_group = text("image_group", "parc");
            let wim_folder = text("wim_folder", "C:\\RemoteInstall\\parc");
            multicast.enabled = d.boolean("multicast").is_none_or(|b| b.value);
            if let Some(r) = d.text("multicast_range", false) {
                match GroupRange::parse(&r.value) {
                    Ok(range) => multicast.range = range,
                    Err(why) => ctx.push(
                        Finding::error(r.at.clone(), "deploy", format!("multicast_range: {why}"))
                            .hint("an organisation-local block such as 239.255.80.0/24"),
                    ),
                }
            }
            if let Some(t) = d.int("multicast_ttl", false, 1, 32) {
                multicast.ttl = t.value as u8;
            }
            if let Some(r) = d.int("multicast_max_rate", false, 1, 100_000) {
                multicast.max_rate_mbit = r.value as u32;
            }
            if let Some(w) = d.int("multicast_wait", false, 0, 3600) {
                multicast.wait_secs = w.value as u64;
            }
            d.finish();
            match (backend.as_ref().map_or("pxe", |b| b.value), server) {
                ("wds", Some(server)) => Some(WdsBackend {
                    server,
                    user,
                    image_group,
                    wim_folder,
                    multicast: multicast.enabled,
                }),
                ("wds", None) => {
                    ctx.push(
                        Finding::error(
                            backend.expect("wds was named").at,
                            "deploy",
                            "`backend = \"wds\"` needs `wds_server`, the WDS server's address",
                        )
                        .hint("add `wds_server = \"<address>\"` to [deploy]"),
                    );
                    None
                }
                _ => None,
            }
        });
        let uai_value = lycee.as_ref().map(|l| &l.1);
        let state = match state {
            Some(t) => parse_state(&ctx, t, uai_value)?,
            None => StateBackend::Sqlite,
        };
        let (name, uai, city, sector) = lycee?;
        Some(Site {
            name,
            uai,
            city,
            sector,
            domain: domain?,
            endpoint: endpoint?,
            power,
            windows,
            deploy,
            multicast,
            state,
        })
    });
    (site, ctx.into_findings())
}

/// Only the `[state]` table of `site.toml` (and `[lycee] uai`, its partition key): what the
/// journal needs to open, read even when other tables of the file have problems (`parc runs`
/// must not depend on `[domain]` being right). `None` when `[state]` itself is wrong; the
/// findings say why, each with its place.
pub fn parse_state_only(src: &Source) -> (Option<StateBackend>, Vec<Finding>) {
    let ctx = Ctx::new(src);
    let state = ctx.parse().and_then(|doc| {
        let root = TableReader::root(&ctx, &doc, "site.toml");
        let Some(t) = root.table("state", false) else {
            return Some(StateBackend::Sqlite);
        };
        let uai = root
            .table("lycee", false)
            .and_then(|l| l.text("uai", false));
        parse_state(&ctx, t, uai.as_ref())
    });
    let findings = ctx.into_findings();
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return (None, findings);
    }
    (state, findings)
}

/// `[state]`: `backend`, and for PostgreSQL its `url`, `password` and `ca`.
fn parse_state(ctx: &Ctx, t: TableReader, uai: Option<&Sp<String>>) -> Option<StateBackend> {
    let backend = t.choice("backend", true, &["sqlite", "postgres"]);
    let url = t.text("url", false);
    let password_secret = t.secret_ref("password", false);
    let ca = t.text("ca", false);
    t.finish();
    let backend = backend?;
    if backend.value == "sqlite" {
        for (key, at) in [
            ("url", url.map(|u| u.at)),
            ("password", password_secret.map(|p| p.at)),
            ("ca", ca.map(|c| c.at)),
        ] {
            if let Some(at) = at {
                ctx.push(
                    Finding::error(
                        at,
                        "state",
                        format!("`{key}` is for `backend = \"postgres\"`; SQLite needs none"),
                    )
                    .hint("remove it, or set `backend = \"postgres\"`"),
                );
            }
        }
        return Some(StateBackend::Sqlite);
    }
    let Some(url) = url else {
        ctx.push(
            Finding::error(
                backend.at,
                "state",
                "`backend = \"postgres\"` needs `url`, the database to connect to",
            )
            .hint("e.g. url = \"postgresql://parc@db.region.example/parc\""),
        );
        return None;
    };
    let mut ok = true;
    if let Err(why) = check_postgres_url(&url.value) {
        ctx.push(
            Finding::error(url.at.clone(), "state", why)
                .hint("postgresql://USER@HOST[:PORT]/DATABASE, or postgresql://USER@/DATABASE?host=/SOCKET/FOLDER"),
        );
        ok = false;
    }
    let Some(uai) = uai else {
        ctx.push(
            Finding::error(
                backend.at,
                "state",
                "a shared database keeps each lycée's rows under its UAI, but `[lycee] uai` is not set",
            )
            .hint("add `uai = \"0840042X\"` (the lycée's code) to [lycee]"),
        );
        return None;
    };
    ok.then(|| {
        StateBackend::Postgres(Box::new(PostgresState {
            url,
            password_secret,
            ca,
            lycee: uai.value.clone(),
        }))
    })
}

/// What the domain can say of a PostgreSQL URL without its driver: the scheme, and that it
/// carries no password (in the user part or the query); the driver's reading of the rest
/// (host, database) is `crate::state::check_url`'s, when the journal opens.
fn check_postgres_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    else {
        return Err("`url` is not a PostgreSQL URL (it must start with postgresql://)".into());
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let userinfo = authority
        .split('/')
        .next()
        .and_then(|a| a.rsplit_once('@'))
        .map_or("", |(u, _)| u);
    let in_query = query
        .split('&')
        .any(|kv| kv.split('=').next() == Some("password"));
    if userinfo.contains(':') || in_query {
        // Never repeat the value.
        return Err(
            "the PostgreSQL URL holds a password; secrets are referred to by name: store it with `parc secret set NAME` and write `password = { secret = \"NAME\" }` in [state]".into(),
        );
    }
    Ok(())
}

fn parse_domain(ctx: &Ctx, d: TableReader) -> Option<Domain> {
    let realm = d.text("realm", true);
    let netbios = d.text("netbios", true);
    let computers_ou = d.text("computers_ou", true);
    let join_account = d.text("join_account", true);
    let join_password_secret = d.secret_ref("join_password", false);
    let controller = parse_controller(ctx, &d);
    let tool = d.choice("offline_join", false, &["samba", "windows"]);
    let ssh_user = d.text("offline_join_user", false);
    d.finish();
    if let (Some(t), None) = (&tool, &controller) {
        ctx.push(
            Finding::error(
                t.at.clone(),
                "controller",
                "`offline_join` runs on the domain controller, but `controller` is not set",
            )
            .hint("add `controller = \"<the DC's address>\"` to [domain]"),
        );
    }
    let offline_join = tool.map(|t| OfflineJoin {
        tool: Sp {
            value: match t.value {
                "windows" => OfflineJoinTool::Windows,
                _ => OfflineJoinTool::Samba,
            },
            at: t.at,
        },
        ssh_user,
    });
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
        controller,
        offline_join,
    })
}

/// `controller`, `ldap`, `ca_file`, `admin_account`, `admin_password` of `[domain]`.
fn parse_controller(ctx: &Ctx, d: &TableReader) -> Option<Controller> {
    let address = d.text("controller", false);
    let ldap = d.choice("ldap", false, &["ldaps", "starttls"]);
    let ca_file = d.text("ca_file", false);
    let admin_account = d.text("admin_account", false);
    let admin_password_secret = d.secret_ref("admin_password", false);
    let Some(address) = address else {
        for (key, at) in [
            ("ldap", ldap.as_ref().map(|l| l.at.clone())),
            ("ca_file", ca_file.as_ref().map(|c| c.at.clone())),
            (
                "admin_account",
                admin_account.as_ref().map(|a| a.at.clone()),
            ),
            (
                "admin_password",
                admin_password_secret.as_ref().map(|a| a.at.clone()),
            ),
        ] {
            if let Some(at) = at {
                ctx.push(
                    Finding::error(
                        at,
                        "controller",
                        format!(
                            "`{key}` describes the domain controller, but `controller` is not set"
                        ),
                    )
                    .hint("add `controller = \"<the DC's address>\"` to [domain]"),
                );
            }
        }
        return None;
    };
    Some(Controller {
        address,
        ldap: match ldap.as_deref().copied() {
            Some("starttls") => LdapMode::StartTls,
            _ => LdapMode::Ldaps,
        },
        ca_file,
        admin_account,
        admin_password_secret,
    })
}

/// An IPv4 address, or a located finding.
fn ipv4(ctx: &Ctx, v: &Sp<String>, what: &str) -> Option<std::net::Ipv4Addr> {
    match v.value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.push(
                Finding::error(
                    v.at.clone(),
                    "address",
                    format!("{what} \"{}\" is not an IPv4 address", v.value),
                )
                .hint("e.g. \"172.16.4.2\""),
            );
            None
        }
    }
}

fn parse_power(ctx: &Ctx, p: TableReader) -> Power {
    let wake_on_lan = p.boolean("wake_on_lan").is_none_or(|b| b.value);
    let broadcast = p.text("broadcast", false);
    p.finish();
    let broadcast = broadcast.filter(|b| ipv4(ctx, b, "broadcast address").is_some());
    Power {
        wake_on_lan,
        broadcast,
    }
}

fn parse_endpoint(ctx: &Ctx, e: TableReader) -> Option<Endpoint> {
    let kind = e.choice("kind", true, &["pxe", "wds"]);
    let out = match kind.as_deref().copied() {
        Some("pxe") => {
            let address = e.text("address", true);
            let interface = e.text("interface", false);
            let port = e
                .int("http_port", false, 1, 65535)
                .map_or(8000, |p| p.value as u16);
            let dhcp = e.choice("dhcp", false, &["proxy", "full", "external"]);
            let range = e.strings("dhcp_range", false);
            if e.has("proxy_dhcp") {
                // The old boolean: say what replaced it rather than "unknown key".
                let old = e.boolean("proxy_dhcp");
                if let Some(old) = old {
                    ctx.push(
                        Finding::error(old.at, "dhcp", "`proxy_dhcp` was replaced by `dhcp`")
                            .hint("write `dhcp = \"proxy\"` (beside the lycée's DHCP) or `dhcp = \"full\"` (an isolated segment)"),
                    );
                }
            }
            let address = address.filter(|a| ipv4(ctx, a, "endpoint address").is_some());
            let dhcp = match dhcp.as_ref().map(|d| (d.value, d.at.clone())) {
                Some(("full", at)) => match range.as_slice() {
                    [first, last] => {
                        let (a, b) = (
                            ipv4(ctx, first, "first address of dhcp_range"),
                            ipv4(ctx, last, "last address of dhcp_range"),
                        );
                        match (a, b) {
                            (Some(a), Some(b)) if a > b => {
                                ctx.push(Finding::error(
                                    first.at.clone(),
                                    "dhcp",
                                    format!("dhcp_range starts after it ends ({a} > {b})"),
                                ));
                                None
                            }
                            (Some(_), Some(_)) => Some(DhcpSetting::Full {
                                first: first.clone(),
                                last: last.clone(),
                            }),
                            _ => None,
                        }
                    }
                    _ => {
                        ctx.push(
                            Finding::error(
                                at,
                                "dhcp",
                                "`dhcp = \"full\"` needs `dhcp_range = [FIRST, LAST]`",
                            )
                            .hint("the addresses parc's own DHCP server hands out, e.g. [\"10.77.0.100\", \"10.77.0.199\"]"),
                        );
                        None
                    }
                },
                other => {
                    if let Some(r) = range.first() {
                        ctx.push(
                            Finding::error(
                                r.at.clone(),
                                "dhcp",
                                "`dhcp_range` is only used with `dhcp = \"full\"`",
                            )
                            .hint("in proxy and external modes the lycée's DHCP server hands out the addresses"),
                        );
                    }
                    match other.map(|(w, _)| w) {
                        Some("external") => Some(DhcpSetting::External),
                        Some("proxy") | None => Some(DhcpSetting::Proxy),
                        _ => None,
                    }
                }
            };
            match (address, dhcp) {
                (Some(address), Some(dhcp)) => Some(Endpoint::Pxe {
                    address,
                    interface,
                    http_port: port,
                    dhcp,
                }),
                _ => None,
            }
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

    const BASE: &str = "[lycee]\nname = \"L\"\nuai = \"0130001A\"\nsector = \"S\"\n\n[domain]\nrealm = \"T.LAN\"\nnetbios = \"T\"\ncomputers_ou = \"OU=S,DC=t,DC=lan\"\njoin_account = \"j\"\n";

    fn parsed(rest: &str) -> (Option<Site>, Vec<String>) {
        let (site, findings) = parse(&Source::new("site.toml", format!("{BASE}{rest}")));
        (site, findings.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn proxy_dhcp_is_the_default_and_power_wakes_on_lan() {
        let (site, f) = parsed("[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n");
        assert!(f.is_empty(), "{f:?}");
        let site = site.unwrap();
        assert!(matches!(
            site.endpoint,
            Endpoint::Pxe {
                dhcp: DhcpSetting::Proxy,
                http_port: 8000,
                ..
            }
        ));
        assert!(site.power.wake_on_lan);
        assert!(site.domain.controller.is_none());
    }

    #[test]
    fn full_dhcp_needs_its_range_and_only_it_takes_one() {
        let (site, f) =
            parsed("[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\ndhcp = \"full\"\n");
        assert!(site.is_none());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("site.toml:14:8: error: `dhcp = \"full\"` needs `dhcp_range"),
            "{f:?}"
        );
        let (_, f) = parsed(
            "[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\ndhcp_range = [\"10.1.0.100\", \"10.1.0.199\"]\n",
        );
        assert!(f[0].contains("only used with `dhcp = \"full\"`"), "{f:?}");
        let (site, f) = parsed(
            "[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\ndhcp = \"full\"\ndhcp_range = [\"10.1.0.100\", \"10.1.0.199\"]\n",
        );
        assert!(f.is_empty(), "{f:?}");
        assert!(matches!(
            site.unwrap().endpoint,
            Endpoint::Pxe {
                dhcp: DhcpSetting::Full { .. },
                ..
            }
        ));
    }

    #[test]
    fn addresses_must_be_ipv4_and_the_old_key_says_what_replaced_it() {
        let (_, f) = parsed(
            "[endpoint]\nkind = \"pxe\"\naddress = \"pxe.lan\"\nproxy_dhcp = true\n\n[power]\nbroadcast = \"x\"\n",
        );
        assert!(
            f.iter().any(|l| l.starts_with(
                "site.toml:13:11: error: endpoint address \"pxe.lan\" is not an IPv4 address"
            )),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|l| l
                    .starts_with("site.toml:14:14: error: `proxy_dhcp` was replaced by `dhcp`")),
            "{f:?}"
        );
        assert!(
            f.iter().any(|l| l.contains("broadcast address \"x\"")),
            "{f:?}"
        );
    }

    #[test]
    fn the_controller_and_its_account() {
        let (site, f) = parsed(
            "controller = \"10.1.0.10\"\nldap = \"starttls\"\nadmin_account = \"svc\"\nadmin_password = { secret = \"dc-admin\" }\n[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n",
        );
        assert!(f.is_empty(), "{f:?}");
        let c = site.unwrap().domain.controller.unwrap();
        assert_eq!(c.address.value, "10.1.0.10");
        assert_eq!(c.ldap, LdapMode::StartTls);
        assert_eq!(c.admin_password_secret.unwrap().value, "dc-admin");
        let (_, f) =
            parsed("ca_file = \"ca.pem\"\n[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n");
        assert!(
            f[0].contains("`ca_file` describes the domain controller, but `controller` is not set"),
            "{f:?}"
        );
    }

    #[test]
    fn offline_join_and_the_windows_settings() {
        let (site, f) = parsed(
            "controller = \"10.1.0.10\"\noffline_join = \"samba\"\n[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n[windows]\nadmin_password = { secret = \"windows-admin\" }\n",
        );
        assert!(f.is_empty(), "{f:?}");
        let site = site.unwrap();
        let o = site.domain.offline_join.unwrap();
        assert_eq!(o.tool.value, OfflineJoinTool::Samba);
        assert!(o.ssh_user.is_none());
        let w = site.windows.unwrap();
        assert_eq!(w.admin_password_secret.value, "windows-admin");
        assert_eq!(
            (
                w.time_zone.as_str(),
                w.locale.as_str(),
                w.input_locale.as_str()
            ),
            ("Romance Standard Time", "fr-FR", "040c:0000040c")
        );
        // A tool parc does not know, located; offline_join without a DC; [windows] without
        // its password.
        let (_, f) = parsed(
            "controller = \"10.1.0.10\"\noffline_join = \"adcli\"\n[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n",
        );
        assert!(
            f.iter().any(|f| f.contains("adcli") && f.contains("samba")),
            "{f:?}"
        );
        let (_, f) = parsed(
            "offline_join = \"windows\"\n[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n[windows]\ntime_zone = \"UTC\"\n",
        );
        assert!(
            f.iter()
                .any(|f| f.contains("`offline_join` runs on the domain controller")),
            "{f:?}"
        );
        assert!(f.iter().any(|f| f.contains("admin_password")), "{f:?}");
    }

    #[test]
    fn multicast_is_on_by_default_and_tunable() {
        let pxe = "[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n";
        let (site, f) = parsed(pxe);
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(site.unwrap().multicast, MulticastPolicy::default());
        let (site, f) = parsed(&format!(
            "{pxe}[deploy]\nmulticast_range = \"239.192.4.0/28\"\nmulticast_ttl = 2\nmulticast_max_rate = 400\nmulticast_wait = 90\n"
        ));
        assert!(f.is_empty(), "{f:?}");
        let m = site.unwrap().multicast;
        assert!(m.enabled);
        assert_eq!(
            (m.range.to_string(), m.ttl, m.max_rate_mbit, m.wait_secs),
            ("239.192.4.0/28".to_string(), 2, 400, 90)
        );
        let (site, _) = parsed(&format!("{pxe}[deploy]\nmulticast = false\n"));
        assert!(!site.unwrap().multicast.enabled);
        let (_, f) = parsed(&format!(
            "{pxe}[deploy]\nmulticast_range = \"10.0.0.0/24\"\n"
        ));
        assert!(
            f.iter().any(|f| f.contains("not a multicast address")),
            "{f:?}"
        );
        let (_, f) = parsed(&format!("{pxe}[deploy]\nmulticast_ttl = 0\n"));
        assert!(f.iter().any(|f| f.contains("multicast_ttl")), "{f:?}");
    }

    #[test]
    fn the_wds_deploy_backend() {
        let pxe = "[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n";
        let (site, f) = parsed(&format!(
            "{pxe}[deploy]\nbackend = \"wds\"\nwds_server = \"10.1.0.5\"\n"
        ));
        assert!(f.is_empty(), "{f:?}");
        let w = site.unwrap().deploy.unwrap();
        assert_eq!(w.server.value, "10.1.0.5");
        assert_eq!(
            (w.user.as_str(), w.image_group.as_str(), w.multicast),
            ("Administrator", "parc", true)
        );
        assert_eq!(w.wim_folder, r"C:\RemoteInstall\parc");
        let (site, f) = parsed(&format!("{pxe}[deploy]\nbackend = \"pxe\"\n"));
        assert!(f.is_empty() && site.unwrap().deploy.is_none(), "{f:?}");
        let (_, f) = parsed(&format!("{pxe}[deploy]\nbackend = \"wds\"\n"));
        assert!(
            f.iter()
                .any(|f| f.contains("needs `wds_server`") && f.contains("site.toml:")),
            "{f:?}"
        );
        let (_, f) = parsed(&format!("{pxe}[deploy]\nbackend = \"fog\"\n"));
        assert!(f.iter().any(|f| f.contains("fog")), "{f:?}");
    }

    #[test]
    fn the_state_backend_sqlite_by_default_postgres_when_said() {
        let pxe = "[endpoint]\nkind = \"pxe\"\naddress = \"10.1.0.2\"\n";
        let (site, f) = parsed(pxe);
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(site.unwrap().state, StateBackend::Sqlite);
        let (site, f) = parsed(&format!(
            "{pxe}[state]\nbackend = \"postgres\"\nurl = \"postgresql://parc@/parc?host=/run/postgresql\"\npassword = {{ secret = \"state-db\" }}\n"
        ));
        assert!(f.is_empty(), "{f:?}");
        let StateBackend::Postgres(pg) = site.unwrap().state else {
            panic!("expected PostgreSQL");
        };
        assert_eq!(pg.lycee, "0130001A");
        assert_eq!(pg.password_secret.unwrap().value, "state-db");
        assert_eq!(pg.ca, None);
        // `ca`: a path kept as written, with its place (the file is read when the state opens).
        let (site, f) = parsed(&format!(
            "{pxe}[state]\nbackend = \"postgres\"\nurl = \"postgresql://parc@db.region.example/parc?sslmode=require\"\nca = \"certs/region-ca.pem\"\n"
        ));
        assert!(f.is_empty(), "{f:?}");
        let StateBackend::Postgres(pg) = site.unwrap().state else {
            panic!("expected PostgreSQL");
        };
        let ca = pg.ca.expect("ca");
        assert_eq!(ca.value, "certs/region-ca.pem");
        assert!(ca.at.to_string().starts_with("site.toml:"), "{}", ca.at);
        // Each mistake with its place.
        let bad = |state: &str| parsed(&format!("{pxe}[state]\n{state}")).1;
        let f = bad("backend = \"postgres\"\n");
        assert!(
            f.iter()
                .any(|f| f.contains("needs `url`") && f.contains("site.toml:")),
            "{f:?}"
        );
        let f = bad("backend = \"postgres\"\nurl = \"postgresql://parc:hunter2@db/parc\"\n");
        assert!(
            f.iter().any(|f| f.contains("holds a password"))
                && !f.iter().any(|f| f.contains("hunter2")),
            "{f:?}"
        );
        let f =
            bad("backend = \"postgres\"\nurl = \"postgresql://parc@db/parc?password=hunter2\"\n");
        assert!(
            f.iter().any(|f| f.contains("holds a password"))
                && !f.iter().any(|f| f.contains("hunter2")),
            "{f:?}"
        );
        let f = bad("backend = \"postgres\"\nurl = \"mysql://db/parc\"\n");
        assert!(
            f.iter().any(|f| f.contains("not a PostgreSQL URL")),
            "{f:?}"
        );
        let f = bad("backend = \"postgresql\"\n");
        assert!(
            f.iter().any(|f| f.contains("did you mean \"postgres\"")),
            "{f:?}"
        );
        let f = bad("backend = \"sqlite\"\nurl = \"postgresql://db/parc\"\n");
        assert!(f.iter().any(|f| f.contains("`url` is for")), "{f:?}");
        let f = bad("backend = \"sqlite\"\nca = \"region-ca.pem\"\n");
        assert!(
            f.iter()
                .any(|f| f.contains("`ca` is for") && f.contains("site.toml:")),
            "{f:?}"
        );
        let f = bad("backend = \"postgres\"\nurl = \"postgresql://db/parc\"\nca = \"\"\n");
        assert!(
            f.iter().any(|f| f.contains("`ca` must not be empty")),
            "{f:?}"
        );
        let f = bad("backend = \"postgres\"\nurl = \"postgresql://db/parc\"\nca = 3\n");
        assert!(f.iter().any(|f| f.contains("site.toml:")), "{f:?}");
        let f = bad("backend = \"postgres\"\nurl = \"postgresql://db/parc\"\npasword = 1\n");
        assert!(
            f.iter().any(|f| f.contains("did you mean `password`")),
            "{f:?}"
        );
    }

    #[test]
    fn the_state_table_alone_is_read_even_when_the_rest_of_the_file_is_wrong() {
        let src = |t: &str| Source::new("site.toml", t.to_string());
        let (state, f) =
            parse_state_only(&src("[lycee]\nuai = \"0840042X\"\n[domain]\nbroken = 1\n"));
        assert_eq!((state, f.len()), (Some(StateBackend::Sqlite), 0));
        let (state, f) = parse_state_only(&src(
            "[lycee]\nuai = \"0840042X\"\n[state]\nbackend = \"postgres\"\nurl = \"postgresql://parc@db/parc\"\n",
        ));
        assert!(
            matches!(state, Some(StateBackend::Postgres(ref p)) if p.lycee == "0840042X"),
            "{f:?}"
        );
        let (state, f) = parse_state_only(&src(
            "[state]\nbackend = \"postgres\"\nurl = \"postgresql://parc@db/parc\"\n",
        ));
        assert_eq!(state, None);
        assert!(f[0].to_string().starts_with("site.toml:2:"), "{}", f[0]);
        assert!(
            f[0].to_string().contains("`[lycee] uai` is not set"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn dns() {
        assert!(valid_dn("OU=Salles,DC=mistral,DC=lan"));
        assert!(!valid_dn("Salles/mistral"));
    }
}
