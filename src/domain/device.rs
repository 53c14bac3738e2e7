//! `devices.csv`: the inventory, one workstation per row, `;`-separated with a named header.

use chrono::NaiveDate;

use super::finding::{Finding, Location, Source, did_you_mean};
use super::toml_read::Sp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Funding {
    /// Bought by the Région (PRELP).
    Region,
    /// Bought on the lycée's own funds.
    FondsPropres,
}

impl Funding {
    pub fn as_str(self) -> &'static str {
        match self {
            Funding::Region => "region",
            Funding::FondsPropres => "fonds-propres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceState {
    InService,
    Spare,
    Broken,
    Scrapped,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::InService => "in-service",
            DeviceState::Spare => "spare",
            DeviceState::Broken => "broken",
            DeviceState::Scrapped => "scrapped",
        }
    }
}

/// One workstation of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The start of its row.
    pub row: Location,
    /// The room it stands in; empty for a spare kept in storage.
    pub room: Option<Sp<String>>,
    pub hostname: Sp<String>,
    /// Normalised: lower case, colon-separated.
    pub mac: Sp<String>,
    pub serial: Sp<String>,
    pub model: Sp<String>,
    pub purchase_date: Sp<NaiveDate>,
    /// When given; otherwise derived from the model's warranty.
    pub warranty_end: Option<Sp<NaiveDate>>,
    pub funding: Funding,
    pub state: DeviceState,
    pub ip: Option<String>,
    pub notes: String,
}

/// The columns, in the order parc writes them. `room`, `warranty_end`, `ip` and `notes` may be
/// left empty; `warranty_end`, `ip` and `notes` may be absent from the header.
pub const COLUMNS: &[&str] = &[
    "room",
    "hostname",
    "mac",
    "serial",
    "model",
    "purchase_date",
    "warranty_end",
    "funding",
    "state",
    "ip",
    "notes",
];
// Indices into `COLUMNS`.
const ROOM: usize = 0;
const HOSTNAME: usize = 1;
const MAC: usize = 2;
const SERIAL: usize = 3;
const MODEL: usize = 4;
const PURCHASE_DATE: usize = 5;
const WARRANTY_END: usize = 6;
const FUNDING: usize = 7;
const STATE: usize = 8;
const IP: usize = 9;
const NOTES: usize = 10;
const REQUIRED: &[&str] = &[
    "room",
    "hostname",
    "mac",
    "serial",
    "model",
    "purchase_date",
    "funding",
    "state",
];

/// Parses `devices.csv`. Rows with problems are reported and left out.
pub fn parse(src: &Source) -> (Vec<Device>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut devices = Vec::new();
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(&src.text);
    let bom = src.text.len() - text.len();
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());

    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            findings.push(Finding::error(
                src.at(bom),
                "csv",
                format!("cannot read the header row: {e}"),
            ));
            return (devices, findings);
        }
    };
    let mut col_of = std::collections::HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let at = src.at(bom + field_offset(text, 0, i));
        let name = h.trim().to_ascii_lowercase();
        if COLUMNS.contains(&name.as_str()) {
            if col_of
                .insert(
                    COLUMNS
                        .iter()
                        .find(|c| **c == name)
                        .copied()
                        .unwrap_or_default(),
                    i,
                )
                .is_some()
            {
                findings.push(Finding::error(
                    at,
                    "csv-header",
                    format!("column `{name}` appears twice"),
                ));
            }
        } else {
            let mut f = Finding::error(at, "csv-header", format!("unknown column `{h}`"));
            if let Some(m) = did_you_mean(&name, COLUMNS.iter().copied()) {
                f = f.hint(format!("did you mean `{m}`?"));
            }
            findings.push(f);
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|c| !col_of.contains_key(**c))
        .copied()
        .collect();
    if !missing.is_empty() {
        findings.push(
            Finding::error(
                src.at(bom),
                "csv-header",
                format!("missing column(s): {}", missing.join(", ")),
            )
            .hint(format!("the header is: {}", COLUMNS.join(";"))),
        );
        return (devices, findings);
    }
    // Where each of `COLUMNS` is in the header, looked up once rather than per row.
    let index: Vec<Option<usize>> = COLUMNS.iter().map(|c| col_of.get(c).copied()).collect();
    let mut offsets = Vec::with_capacity(headers.len());

    // One record read into again and again (`records()` would clone it for every row).
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let at = e
                    .position()
                    .map_or(src.whole(), |p| src.at(bom + p.byte() as usize));
                findings.push(Finding::error(at, "csv", format!("unreadable row: {e}")));
                continue;
            }
        }
        let start = record.position().map_or(0, |p| p.byte() as usize);
        let row_at = src.at(bom + start);
        if record.len() != headers.len() {
            findings.push(
                Finding::error(
                    row_at,
                    "csv-row",
                    format!(
                        "this row has {} fields, the header has {}",
                        record.len(),
                        headers.len()
                    ),
                )
                .hint("fields are separated by ';'; quote a field that contains one"),
            );
            continue;
        }
        field_offsets(text, start, headers.len(), &mut offsets);
        // A field's value and place; its place is only worked out for the located fields.
        let value = |column: usize| -> Option<&str> { record.get(index[column]?) };
        let field = |column: usize| -> Option<Sp<String>> {
            let i = index[column]?;
            let value = record.get(i)?.to_string();
            Some(Sp {
                value,
                at: src.at(bom + offsets[i]),
            })
        };
        let before = findings.len();
        let mut need = |column: usize| -> Option<Sp<String>> {
            let f = field(column)?;
            if f.value.is_empty() {
                findings.push(Finding::error(
                    f.at,
                    "csv-empty",
                    format!("`{}` must not be empty", COLUMNS[column]),
                ));
                return None;
            }
            Some(f)
        };
        let hostname = need(HOSTNAME);
        let mac = need(MAC);
        let serial = need(SERIAL);
        let model = need(MODEL);
        let purchase = need(PURCHASE_DATE);
        let funding = need(FUNDING);
        let state = need(STATE);
        let room = field(ROOM).filter(|r| !r.value.is_empty());
        let warranty = field(WARRANTY_END).filter(|w| !w.value.is_empty());
        let ip = value(IP).filter(|s| !s.is_empty()).map(str::to_string);
        let notes = value(NOTES).map(str::to_string).unwrap_or_default();

        let hostname = hostname.and_then(|h| check_hostname(h, &mut findings));
        let mac = mac.and_then(|m| match normalise_mac(&m.value) {
            Some(v) => Some(Sp { value: v, at: m.at }),
            None => {
                findings.push(
                    Finding::error(
                        m.at,
                        "mac",
                        format!("MAC address \"{}\" is malformed", m.value),
                    )
                    .hint("write six hexadecimal pairs, e.g. 52:54:00:12:34:56"),
                );
                None
            }
        });
        let purchase = purchase.and_then(|d| parse_date(d, &mut findings));
        let warranty = match warranty {
            Some(w) => parse_date(w, &mut findings).map(Some),
            None => Some(None),
        };
        let funding = funding.and_then(|f| match parse_funding(&f.value) {
            Some(v) => Some(v),
            None => {
                findings.push(
                    Finding::error(
                        f.at,
                        "funding",
                        format!("funding \"{}\" is not known", f.value),
                    )
                    .hint(
                        "use `region` (Région, PRELP) or `fonds-propres` (the lycée's own funds)",
                    ),
                );
                None
            }
        });
        let state = state.and_then(|s| match parse_state(&s.value) {
            Some(v) => Some(v),
            None => {
                let mut f = Finding::error(s.at, "state", format!("state \"{}\" is not known", s.value))
                    .hint("use in-service, spare, broken or scrapped (en service, réserve, en panne, réformé)");
                if let Some(m) = did_you_mean(&s.value, ["in-service", "spare", "broken", "scrapped"]) {
                    f = f.hint(format!("did you mean `{m}`?"));
                }
                findings.push(f);
                None
            }
        });
        if findings.len() > before {
            continue;
        }
        let (
            Some(hostname),
            Some(mac),
            Some(serial),
            Some(model),
            Some(purchase_date),
            Some(warranty_end),
        ) = (hostname, mac, serial, model, purchase, warranty)
        else {
            continue;
        };
        let (Some(funding), Some(state)) = (funding, state) else {
            continue;
        };
        if room.is_none() && state == DeviceState::InService {
            findings.push(
                Finding::error(
                    row_at.clone(),
                    "csv-room",
                    format!("{} is in service but has no room", hostname.value),
                )
                .hint("give its room, or set its state to spare"),
            );
            continue;
        }
        devices.push(Device {
            row: row_at,
            room,
            hostname,
            mac,
            serial,
            model,
            purchase_date,
            warranty_end,
            funding,
            state,
            ip,
            notes,
        });
    }
    (devices, findings)
}

/// Byte offset of field `index` of the record starting at `start`, honouring quotes.
fn field_offset(text: &str, start: usize, index: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    let mut field = 0;
    let mut quoted = false;
    while i < bytes.len() && field < index {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b';' if !quoted => field += 1,
            b'\n' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    // Skip the blanks that trimming removed.
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    i
}

/// [`field_offset`] of fields `0..count` of the record starting at `start`, in one pass,
/// into `out`.
fn field_offsets(text: &str, start: usize, count: usize, out: &mut Vec<usize>) {
    let bytes = text.as_bytes();
    out.clear();
    let mut i = start;
    let mut quoted = false;
    for field in 0..count {
        if field > 0 {
            // Just past the next separator; a line end outside quotes stops the scan for good.
            while i < bytes.len() {
                let b = bytes[i];
                if b == b'\n' && !quoted {
                    break;
                }
                i += 1;
                match b {
                    b'"' => quoted = !quoted,
                    b';' if !quoted => break,
                    _ => {}
                }
            }
        }
        let mut at = i;
        while at < bytes.len() && bytes[at] == b' ' {
            at += 1;
        }
        out.push(at);
    }
}

fn check_hostname(h: Sp<String>, findings: &mut Vec<Finding>) -> Option<Sp<String>> {
    let v = &h.value;
    let ok = v.len() <= 63
        && !v.starts_with('-')
        && !v.ends_with('-')
        && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if !ok {
        findings.push(
            Finding::error(h.at, "hostname", format!("hostname \"{v}\" is not valid"))
                .hint("use letters, digits and '-' only, e.g. b204-pc07"),
        );
        return None;
    }
    if v.len() > 15 {
        findings.push(
            Finding::warning(
                h.at.clone(),
                "hostname-length",
                format!("hostname \"{v}\" is longer than 15 characters"),
            )
            .hint("Active Directory truncates computer names to 15 characters (NetBIOS)"),
        );
    }
    Some(Sp {
        value: v.to_ascii_lowercase(),
        at: h.at,
    })
}

fn parse_date(d: Sp<String>, findings: &mut Vec<Finding>) -> Option<Sp<NaiveDate>> {
    match parse_date_str(&d.value) {
        Some(v) => Some(Sp { value: v, at: d.at }),
        None => {
            findings.push(
                Finding::error(d.at, "date", format!("\"{}\" is not a valid date", d.value))
                    .hint("write YYYY-MM-DD (or DD/MM/YYYY)"),
            );
            None
        }
    }
}

/// `YYYY-MM-DD`, or `DD/MM/YYYY` as French exports write it.
pub fn parse_date_str(s: &str) -> Option<NaiveDate> {
    iso_date(s).or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
            .ok()
    })
}

/// The common case of [`parse_date_str`], without chrono's format interpreter: exactly
/// `YYYY-MM-DD`, a valid date. Anything else is left to chrono.
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(number(&b[..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..])?)
}

/// `aa:bb:cc:dd:ee:ff` from any of `AA:BB:…`, `aa-bb-…`, `aabb.ccdd.eeff`.
pub fn normalise_mac(s: &str) -> Option<String> {
    let mut out = String::with_capacity(17);
    let mut digits = 0;
    // The first separator, how many there are, and whether they are all the same.
    let (mut first, mut separators, mut same) = (None, 0, true);
    for c in s.chars() {
        if matches!(c, ':' | '-' | '.') {
            same &= first.is_none_or(|f| f == c);
            first.get_or_insert(c);
            separators += 1;
            continue;
        }
        if !c.is_ascii_hexdigit() || digits == 12 {
            return None;
        }
        if digits > 0 && digits % 2 == 0 {
            out.push(':');
        }
        out.push(c.to_ascii_lowercase());
        digits += 1;
    }
    let separators_ok = match (separators, first) {
        (0, _) => true,
        (5, Some(c)) => same && c != '.',
        (2, Some('.')) => same,
        _ => false,
    };
    (digits == 12 && separators_ok).then_some(out)
}

pub fn parse_funding(s: &str) -> Option<Funding> {
    // Most files already write the canonical spelling: no need to fold it.
    funding_of(s).or_else(|| funding_of(&s.trim().to_lowercase()))
}

fn funding_of(s: &str) -> Option<Funding> {
    match s {
        "region" | "région" | "prelp" => Some(Funding::Region),
        "fonds-propres" | "fonds propres" | "fonds_propres" | "lycee" | "lycée" => {
            Some(Funding::FondsPropres)
        }
        _ => None,
    }
}

pub fn parse_state(s: &str) -> Option<DeviceState> {
    state_of(s).or_else(|| state_of(&s.trim().to_lowercase()))
}

fn state_of(s: &str) -> Option<DeviceState> {
    match s {
        "in-service" | "in service" | "en service" | "en-service" => Some(DeviceState::InService),
        "spare" | "réserve" | "reserve" | "en réserve" | "stock" => Some(DeviceState::Spare),
        "broken" | "en panne" | "panne" | "hs" => Some(DeviceState::Broken),
        "scrapped" | "réformé" | "reforme" | "réforme" | "rebut" => Some(DeviceState::Scrapped),
        _ => None,
    }
}

/// Renders devices back to `devices.csv` text (header included), in parc's column order.
pub fn render(devices: &[Device]) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    for d in devices {
        let _ = w.write_record([
            d.room.as_ref().map_or("", |r| r.value.as_str()),
            &d.hostname.value,
            &d.mac.value,
            &d.serial.value,
            &d.model.value,
            &d.purchase_date.value.to_string(),
            &d.warranty_end
                .as_ref()
                .map_or(String::new(), |w| w.value.to_string()),
            d.funding.as_str(),
            d.state.as_str(),
            d.ip.as_deref().unwrap_or(""),
            &d.notes,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The computer (NetBIOS) name of a host: its first label upper-cased, cut at 15 characters
/// as `adcli` and Windows do. Its directory account is `NAME$`.
pub fn computer_name(hostname: &str) -> String {
    hostname
        .split('.')
        .next()
        .unwrap_or_default()
        .to_uppercase()
        .chars()
        .take(15)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state\n";

    fn run(body: &str) -> (Vec<Device>, Vec<String>) {
        let src = Source::new("devices.csv", format!("{HEADER}{body}"));
        let (d, f) = parse(&src);
        (d, f.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn good_rows_parse_with_french_words() {
        let (d, f) = run(
            "b204;B204-PC01;52-54-00-AA-BB-01;SN1;optiplex-7010;2023-09-01;;Région;en service\n",
        );
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(d[0].mac.value, "52:54:00:aa:bb:01");
        assert_eq!(d[0].hostname.value, "b204-pc01");
        assert_eq!(d[0].state, DeviceState::InService);
        assert_eq!(d[0].funding, Funding::Region);
    }

    #[test]
    fn bad_fields_are_located_at_their_column() {
        let (d, f) = run("b204;pc1;52:54:00:zz:00:01;SN1;m;2023-13-01;;region;in-service\n");
        assert!(d.is_empty());
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("devices.csv:2:10: error: MAC address"),
            "{}",
            f[0]
        );
        assert!(
            f[1].starts_with("devices.csv:2:34: error: \"2023-13-01\""),
            "{}",
            f[1]
        );
    }

    #[test]
    fn short_rows_and_unknown_columns() {
        let src = Source::new(
            "devices.csv",
            "room;hostname;mac;serial;modle;purchase_date;funding;state\nb;h\n",
        );
        let (_, f) = parse(&src);
        let f: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert!(
            f[0].contains("unknown column `modle`") && f[0].contains("did you mean `model`"),
            "{f:?}"
        );
    }

    #[test]
    fn render_round_trips() {
        let (d, _) =
            run("b204;pc1;52:54:00:00:00:01;SN1;m;2023-01-02;2028-01-02;fonds-propres;spare\n");
        let again = render(&d);
        let (d2, f) = parse(&Source::new("devices.csv", again));
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(d2[0].hostname.value, d[0].hostname.value);
        assert_eq!(
            d2[0].warranty_end.as_ref().map(|w| w.value),
            d[0].warranty_end.as_ref().map(|w| w.value)
        );
    }

    #[test]
    fn field_offsets_match_field_offset() {
        let text = "a;b\n x ; \"q;\nr\" ;;z;\n;\"unclosed;w\nlast";
        for start in [0, 4] {
            let mut all = Vec::new();
            field_offsets(text, start, 6, &mut all);
            let one: Vec<usize> = (0..6).map(|i| field_offset(text, start, i)).collect();
            assert_eq!(all, one, "from {start}");
        }
    }

    #[test]
    fn dates_iso_fast_path_agrees_with_chrono() {
        for s in [
            "2023-09-01",
            "2024-02-29",
            "2023-02-29",
            "2023-13-01",
            "2023-1-05",
            "+2023-01-05",
            "2023-01-0x",
            "01/09/2023",
            "0000-01-01",
            "",
        ] {
            let chrono = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
                .ok();
            assert_eq!(parse_date_str(s), chrono, "{s}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            normalise_mac("5254.00aa.bb01").as_deref(),
            Some("52:54:00:aa:bb:01")
        );
        assert_eq!(normalise_mac("52:54:00:aa:bb"), None);
        assert_eq!(normalise_mac("52:54-00:aa:bb:01"), None);
        assert_eq!(normalise_mac("5254.00aa.bb01.").as_deref(), None);
        assert_eq!(normalise_mac("52.54.00.aa.bb.01"), None);
        assert_eq!(
            normalise_mac("525400AABB01").as_deref(),
            Some("52:54:00:aa:bb:01")
        );
        assert_eq!(normalise_mac("525400AABB0102"), None);
        assert_eq!(normalise_mac("525400AABBé1"), None);
    }
}
