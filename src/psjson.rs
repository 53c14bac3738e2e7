//! What PowerShell's `ConvertTo-Json` prints, read back: the last JSON object of a script's
//! output (scripts may print other lines before it), and lists, which ConvertTo-Json writes as
//! nothing (no item), one object (one item, in some versions also inside a property) or an
//! array.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The last line of `stdout` that is a JSON object, parsed.
pub fn last_object<T: DeserializeOwned>(stdout: &str) -> Result<T, String> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("{e}: `{}`", excerpt(stdout)))
}

/// A whole output as a list: empty, one object, or an array.
pub fn list<T: DeserializeOwned>(stdout: &str) -> Result<Vec<T>, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str::<OneOrMany<T>>(text)
        .map(OneOrMany::into_vec)
        .map_err(|e| format!("{e}: `{}`", excerpt(text)))
}

/// `#[serde(deserialize_with = "crate::psjson::one_or_many")]` for a list property
/// (null, one item or an array).
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<OneOrMany<T>>::deserialize(d)?.map_or_else(Vec::new, OneOrMany::into_vec))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![t],
        }
    }
}

fn excerpt(text: &str) -> String {
    text.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct P {
        name: String,
        #[serde(default, deserialize_with = "one_or_many")]
        tags: Vec<String>,
    }

    #[test]
    fn the_three_shapes() {
        assert_eq!(list::<P>("").unwrap(), vec![]);
        assert_eq!(list::<P>(r#"{"name":"a"}"#).unwrap().len(), 1);
        assert_eq!(
            list::<P>(r#"[{"name":"a"},{"name":"b"}]"#).unwrap().len(),
            2
        );
        let p: P = last_object("noise\r\n{\"name\":\"a\",\"tags\":\"x\"}\r\n").unwrap();
        assert_eq!(p.tags, ["x"]);
        let p: P = last_object(r#"{"name":"a","tags":null}"#).unwrap();
        assert!(p.tags.is_empty());
        assert!(last_object::<P>("not found").is_err());
        assert!(list::<P>("not json").unwrap_err().contains("not json"));
    }
}
