//! Digests that bind decisions to exact contents.
//!
//! - The **software-list digest** is what teachers sign: it changes when, and only when, a
//!   product is added, removed, renamed or changes version.
//! - The **recipe digest** is what an image is built from: OS, model and every product's source
//!   and installer digest. An image whose manifest carries another recipe digest is stale.
//!
//! Canonical software list (`docs/recipes.md` documents it for people who check by hand):
//! the line `parc-software-list/1`, then one line per product `NAME<TAB>VERSION`, with name
//! and version trimmed of surrounding blanks, lines sorted by name then version as UTF-8 bytes;
//! every line ends with `\n`. The digest is `sha256:` followed by the lower-case hex SHA-256 of
//! that text.

use sha2::{Digest, Sha256};

use super::recipe::{Recipe, Software, SourceSpec};

/// The canonical text of a software list.
pub fn canonical_software_list<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<(String, String)> = items
        .into_iter()
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    lines.sort();
    let mut out = String::from("parc-software-list/1\n");
    for (n, v) in lines {
        out.push_str(&n);
        out.push('\t');
        out.push_str(&v);
        out.push('\n');
    }
    out
}

/// `sha256:<hex>` of some text.
pub fn sha256_tagged(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The digest teachers sign for this software list.
pub fn software_digest(software: &[Software]) -> String {
    sha256_tagged(&canonical_software_list(
        software
            .iter()
            .map(|s| (s.name.value.as_str(), s.version.value.as_str())),
    ))
}

/// The digest of everything an image is built from.
pub fn recipe_digest(recipe: &Recipe) -> String {
    let mut text = format!(
        "parc-recipe/1\nroom\t{}\nmodel\t{}\nos\t{}\t{}\n",
        recipe.id.value,
        recipe.model.value,
        recipe.os_family.as_str(),
        recipe.base_image.value
    );
    let mut products: Vec<String> = recipe
        .software
        .iter()
        .map(|s| {
            let source = match &s.source.value {
                SourceSpec::Url(u) => format!("url:{u}"),
                SourceSpec::Path(p) => format!("path:{p}"),
                SourceSpec::Debian(d) => format!("debian:{d}"),
            };
            format!(
                "product\t{}\t{}\t{}\t{}\t{}\t{}\n",
                s.name.value.trim(),
                s.version.value.trim(),
                source,
                s.sha256.as_ref().map_or("", |h| h.value.as_str()),
                s.install.as_ref().map_or("", |i| i.value.as_str()),
                s.package.as_ref().map_or("", |p| p.value.as_str()),
            )
        })
        .collect();
    products.sort();
    for p in products {
        text.push_str(&p);
    }
    sha256_tagged(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_sorted_and_trimmed() {
        let text = canonical_software_list([("LibreOffice ", " 24.8.4"), ("GeoGebra", "6.0.850")]);
        assert_eq!(
            text,
            "parc-software-list/1\nGeoGebra\t6.0.850\nLibreOffice\t24.8.4\n"
        );
    }

    #[test]
    fn digest_ignores_order_but_not_versions() {
        let a = sha256_tagged(&canonical_software_list([("A", "1"), ("B", "2")]));
        let b = sha256_tagged(&canonical_software_list([("B", "2"), ("A", "1")]));
        let c = sha256_tagged(&canonical_software_list([("A", "1"), ("B", "3")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Fixed vector: the documented example in docs/recipes.md.
        assert_eq!(
            sha256_tagged("parc-software-list/1\nGeoGebra\t6.0.850\nLibreOffice\t24.8.4\n"),
            sha256_tagged(&canonical_software_list([
                ("GeoGebra", "6.0.850"),
                ("LibreOffice", "24.8.4")
            ]))
        );
    }
}
