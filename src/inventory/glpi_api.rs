//! GLPI REST API v1 (`apirest.php`) client: `initSession` with the App-Token and the user's
//! token, `listSearchOptions/Computer` to find the field ids by their `uid` (never hard-coded,
//! they differ between GLPI versions and plugins), `search/Computer` page by page (`range`,
//! `Content-Range`; `ERROR_RANGE_EXCEED_TOTAL` ends the results, glpi#22350), `killSession`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::Value;

use super::glpi_csv::{glpi_date, warranty_end};
use super::{Imported, InventoryError, slug, state_from_text};
use crate::domain::device::normalise_mac;

/// Rows asked per page.
pub const PAGE: usize = 50;

/// Where and how to reach GLPI. Tokens are secrets: never printed.
pub struct GlpiConfig {
    /// The API's base, e.g. `https://glpi.example/apirest.php`.
    pub url: String,
    pub app_token: String,
    pub user_token: String,
    /// Only computers whose location contains this text.
    pub location: Option<String>,
    pub timeout: Duration,
    pub page: usize,
}

impl std::fmt::Debug for GlpiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlpiConfig")
            .field("url", &self.url)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The search options parc reads, by uid.
const NAME: &str = "Computer.name";
const SERIAL: &str = "Computer.serial";
const MODEL: &str = "Computer.ComputerModel.name";
const LOCATION: &str = "Computer.Location.completename";
const STATE: &str = "Computer.State.completename";
const BUY: &str = "Computer.Infocom.buy_date";
const WARRANTY_START: &str = "Computer.Infocom.warranty_date";
const WARRANTY_MONTHS: &str = "Computer.Infocom.warranty_duration";
const MAC: &str = "Computer.NetworkPort.mac";
const REQUIRED: &[&str] = &[NAME, SERIAL, MODEL, LOCATION];
const OPTIONAL: &[&str] = &[STATE, BUY, WARRANTY_START, WARRANTY_MONTHS, MAC];

struct Client {
    http: reqwest::Client,
    base: String,
    app_token: String,
    secs: u64,
}

/// GLPI's errors are `["ERROR_CODE", "message"]`.
pub fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.as_array()?.first()?.as_str().map(str::to_string)
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// GET → (status, Content-Range, body); HTTP errors mapped, except what `accept` allows.
    async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
        headers: &[(&str, String)],
    ) -> Result<(u16, Option<String>, String), InventoryError> {
        let url = self.url(path);
        let full = reqwest::Url::parse_with_params(&url, query)
            .map_err(|_| InventoryError::BadUrl { url: url.clone() })?;
        let mut req = self
            .http
            .get(full)
            .header("Content-Type", "application/json")
            .header("App-Token", &self.app_token);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let map = |e: reqwest::Error| {
            if e.is_timeout() {
                InventoryError::Timeout {
                    url: url.clone(),
                    secs: self.secs,
                }
            } else {
                InventoryError::Http {
                    url: url.clone(),
                    source: e,
                }
            }
        };
        let resp = req.send().await.map_err(map)?;
        let status = resp.status().as_u16();
        let range = resp
            .headers()
            .get("Content-Range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(map)?;
        Ok((status, range, body))
    }

    fn check(&self, path: &str, status: u16, body: &str) -> Result<(), InventoryError> {
        let url = self.url(path);
        match status {
            200..=299 => Ok(()),
            401 => Err(InventoryError::Unauthorized {
                url,
                code: error_code(body),
            }),
            s => Err(InventoryError::Status {
                url,
                status: s,
                code: error_code(body),
            }),
        }
    }

    fn json(&self, path: &str, body: &str) -> Result<Value, InventoryError> {
        serde_json::from_str(body).map_err(|e| InventoryError::Malformed {
            url: self.url(path),
            message: e.to_string(),
        })
    }
}

/// Reads every computer (of the location, when given) from GLPI.
pub async fn fetch(cfg: &GlpiConfig) -> Result<Vec<Imported>, InventoryError> {
    let base = cfg.url.trim_end_matches('/').to_string();
    if reqwest::Url::parse(&base).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
        return Err(InventoryError::BadUrl { url: base });
    }
    let http = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .build()
        .map_err(|e| InventoryError::Http {
            url: base.clone(),
            source: e,
        })?;
    let c = Client {
        http,
        base,
        app_token: cfg.app_token.clone(),
        secs: cfg.timeout.as_secs(),
    };
    let (status, _, body) = c
        .get(
            "initSession",
            &[],
            &[("Authorization", format!("user_token {}", cfg.user_token))],
        )
        .await?;
    c.check("initSession", status, &body)?;
    let session = c
        .json("initSession", &body)?
        .get("session_token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| InventoryError::Malformed {
            url: c.url("initSession"),
            message: "no session_token".into(),
        })?;
    let result = with_session(&c, &session, cfg).await;
    // Always close the session; a failure to close does not hide the result.
    let _ = c
        .get("killSession", &[], &[("Session-Token", session.clone())])
        .await;
    result
}

async fn with_session(
    c: &Client,
    session: &str,
    cfg: &GlpiConfig,
) -> Result<Vec<Imported>, InventoryError> {
    let h = [("Session-Token", session.to_string())];
    let path = "listSearchOptions/Computer";
    let (status, _, body) = c.get(path, &[], &h).await?;
    c.check(path, status, &body)?;
    let ids = field_ids(&c.json(path, &body)?).map_err(|m| InventoryError::Malformed {
        url: c.url(path),
        message: m,
    })?;
    for uid in REQUIRED {
        if !ids.contains_key(*uid) {
            return Err(InventoryError::SearchOption {
                uid: uid.to_string(),
            });
        }
    }
    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(loc) = &cfg.location {
        query.push(("criteria[0][field]".into(), ids[LOCATION].clone()));
        query.push(("criteria[0][searchtype]".into(), "contains".into()));
        query.push(("criteria[0][value]".into(), loc.clone()));
    }
    let shown: Vec<&&str> = REQUIRED
        .iter()
        .chain(OPTIONAL)
        .filter(|u| ids.contains_key(**u))
        .collect();
    for (i, uid) in shown.iter().enumerate() {
        query.push((format!("forcedisplay[{i}]"), ids[**uid].clone()));
    }
    let mut out = Vec::new();
    let mut start = 0usize;
    let page = cfg.page.max(1);
    loop {
        let mut q = query.clone();
        q.push(("range".into(), format!("{start}-{}", start + page - 1)));
        let path = "search/Computer";
        let (status, range, body) = c.get(path, &q, &h).await?;
        if status == 400 && error_code(&body).as_deref() == Some("ERROR_RANGE_EXCEED_TOTAL") {
            break;
        }
        c.check(path, status, &body)?;
        let v = c.json(path, &body)?;
        let rows = rows(&v).map_err(|m| InventoryError::Malformed {
            url: c.url(path),
            message: m,
        })?;
        let n = rows.len();
        for r in rows {
            if let Some(imp) = to_imported(r, &ids).map_err(|m| InventoryError::Malformed {
                url: c.url(path),
                message: m,
            })? {
                out.push(imp);
            }
        }
        let total = range
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|t| t.trim().parse::<usize>().ok())
            .or_else(|| {
                v.get("totalcount")
                    .and_then(Value::as_u64)
                    .map(|t| t as usize)
            });
        start += page;
        match total {
            Some(t) if start >= t => break,
            None if n < page => break,
            _ if n == 0 => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The table and column behind each uid parc reads: the fallback when an installation names
/// the uid differently (plugins, older versions).
const COLUMNS: &[(&str, &str, &str)] = &[
    (NAME, "glpi_computers", "name"),
    (SERIAL, "glpi_computers", "serial"),
    (MODEL, "glpi_computermodels", "name"),
    (LOCATION, "glpi_locations", "completename"),
    (STATE, "glpi_states", "completename"),
    (BUY, "glpi_infocoms", "buy_date"),
    (WARRANTY_START, "glpi_infocoms", "warranty_date"),
    (WARRANTY_MONTHS, "glpi_infocoms", "warranty_duration"),
    (MAC, "glpi_networkports", "mac"),
];

/// `uid` → search option id, from `listSearchOptions` (`{"1": {"uid": "Computer.name", …}, …}`);
/// a uid parc reads but the answer lacks is looked up by its table and column.
pub fn field_ids(v: &Value) -> Result<HashMap<String, String>, String> {
    let obj = v.as_object().ok_or("listSearchOptions is not an object")?;
    let options: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let mut ids: HashMap<String, String> = options
        .iter()
        .filter_map(|(k, o)| Some((o.get("uid")?.as_str()?.to_string(), (*k).clone())))
        .collect();
    for (uid, table, field) in COLUMNS {
        if ids.contains_key(*uid) {
            continue;
        }
        let found = options
            .iter()
            .filter(|(_, o)| o.get("table").and_then(Value::as_str) == Some(table))
            .filter(|(_, o)| o.get("field").and_then(Value::as_str) == Some(field))
            .map(|(k, _)| (*k).clone())
            .min_by_key(|k| k.parse::<u64>().unwrap_or(u64::MAX));
        if let Some(k) = found {
            ids.insert(uid.to_string(), k);
        }
    }
    Ok(ids)
}

/// The rows of a search answer: `data` is a list, or an object keyed by id (`withindexes`).
pub fn rows(v: &Value) -> Result<Vec<&serde_json::Map<String, Value>>, String> {
    let Some(data) = v.get("data") else {
        // No result: GLPI omits `data` when `totalcount` is 0.
        return if v.get("totalcount").is_some() {
            Ok(Vec::new())
        } else {
            Err("no `data` nor `totalcount`".into())
        };
    };
    let items: Vec<&Value> = match data {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err("`data` is neither a list nor an object".into()),
    };
    items
        .into_iter()
        .map(|i| {
            i.as_object()
                .ok_or_else(|| "a row is not an object".to_string())
        })
        .collect()
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.split("$$##$$").next().unwrap_or("").trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => text(a.first()),
        _ => String::new(),
    }
}

/// One row of a search answer as a workstation (None: a row without a name), `ids` from [`field_ids`].
pub fn to_imported(
    r: &serde_json::Map<String, Value>,
    ids: &HashMap<String, String>,
) -> Result<Option<Imported>, String> {
    let get = |uid: &str| ids.get(uid).map(|id| text(r.get(id))).unwrap_or_default();
    let name = get(NAME);
    if name.is_empty() {
        return Ok(None);
    }
    let date = |uid: &str| -> Result<Option<NaiveDate>, String> {
        let s = get(uid);
        if s.is_empty() {
            return Ok(None);
        }
        glpi_date(&s)
            .map(Some)
            .ok_or_else(|| format!("{name}: \"{s}\" is not a date"))
    };
    let buy = date(BUY)?;
    let start = date(WARRANTY_START)?;
    let mac = get(MAC);
    Ok(Some(Imported {
        hostname: name.to_ascii_lowercase(),
        room: Some(slug(&get(LOCATION))).filter(|s| !s.is_empty()),
        mac: if mac.is_empty() {
            None
        } else {
            Some(normalise_mac(&mac).ok_or_else(|| format!("{name}: MAC \"{mac}\" is malformed"))?)
        },
        ip: None,
        serial: Some(get(SERIAL)).filter(|s| !s.is_empty()),
        model: Some(get(MODEL)).filter(|s| !s.is_empty()),
        purchase_date: buy,
        warranty_end: warranty_end(start.or(buy), &get(WARRANTY_MONTHS)),
        funding: None,
        state: state_from_text(&get(STATE)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ids_come_from_uids() {
        let v: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/glpi/listSearchOptions-Computer.json"
        ))
        .unwrap();
        let ids = field_ids(&v).unwrap();
        assert_eq!(ids[NAME], "1");
        assert_eq!(ids[LOCATION], "3");
        assert_eq!(ids[SERIAL], "5");
        assert_eq!(ids[MODEL], "40");
        assert_eq!(ids[BUY], "37");
        assert_eq!(ids[WARRANTY_MONTHS], "6");
    }

    #[test]
    fn a_renamed_uid_is_found_by_table_and_column() {
        let v = serde_json::json!({
            "common": "Characteristics",
            "1": {"name": "Name", "table": "glpi_computers", "field": "name", "uid": "Computer.name"},
            "126": {"name": "MAC", "table": "glpi_networkports", "field": "mac", "uid": "Computer.Item_NetworkPort.mac"},
            "9": {"name": "Purchase", "table": "glpi_infocoms", "field": "buy_date", "uid": "Computer.Infocom.buy"}
        });
        let ids = field_ids(&v).unwrap();
        assert_eq!(ids[MAC], "126");
        assert_eq!(ids[BUY], "9");
        assert!(!ids.contains_key(SERIAL));
    }

    #[test]
    fn rows_as_list_or_indexed_object() {
        let a: Value = serde_json::from_str(r#"{"totalcount":1,"data":[{"1":"pc1"}]}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"totalcount":1,"data":{"12":{"1":"pc1"}}}"#).unwrap();
        let e: Value = serde_json::from_str(r#"{"totalcount":0,"count":0}"#).unwrap();
        assert_eq!(rows(&a).unwrap().len(), 1);
        assert_eq!(rows(&b).unwrap().len(), 1);
        assert_eq!(rows(&e).unwrap().len(), 0);
        assert!(rows(&serde_json::json!({"oops": 1})).is_err());
    }
}
