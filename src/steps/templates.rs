//! The command templates of the steps (handlebars, one file per command and OS family under
//! `templates/`), rendered without HTML escaping; every interpolated value goes through the
//! `sh` (POSIX) or `ps` (PowerShell) quoting helper.

use std::sync::OnceLock;

use handlebars::{Handlebars, handlebars_helper};

use super::StepError;

handlebars_helper!(sh_helper: |s: str| crate::quote::sh(s));
handlebars_helper!(ps_helper: |s: str| crate::quote::ps(s));
handlebars_helper!(xml_helper: |s: str| xml_escape(s));

/// `s` as XML character data or attribute value.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "linux-deb-install",
        include_str!("templates/linux-deb-install.hbs"),
    ),
    (
        "linux-deb-version",
        include_str!("templates/linux-deb-version.hbs"),
    ),
    (
        "linux-tar-install",
        include_str!("templates/linux-tar-install.hbs"),
    ),
    (
        "linux-zip-install",
        include_str!("templates/linux-zip-install.hbs"),
    ),
    (
        "linux-opt-version",
        include_str!("templates/linux-opt-version.hbs"),
    ),
    ("linux-join", include_str!("templates/linux-join.hbs")),
    (
        "windows-msi-install",
        include_str!("templates/windows-msi-install.hbs"),
    ),
    (
        "windows-exe-install",
        include_str!("templates/windows-exe-install.hbs"),
    ),
    (
        "windows-version",
        include_str!("templates/windows-version.hbs"),
    ),
    ("windows-join", include_str!("templates/windows-join.hbs")),
    (
        "windows-sysprep",
        include_str!("templates/windows-sysprep.hbs"),
    ),
    (
        "windows-verify",
        include_str!("templates/windows-verify.hbs"),
    ),
    (
        "windows-unattend",
        include_str!("templates/windows-unattend.xml.hbs"),
    ),
];

fn registry() -> &'static Handlebars<'static> {
    static REG: OnceLock<Handlebars<'static>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut h = Handlebars::new();
        h.register_escape_fn(handlebars::no_escape);
        h.set_strict_mode(true);
        h.register_helper("sh", Box::new(sh_helper));
        h.register_helper("ps", Box::new(ps_helper));
        h.register_helper("xml", Box::new(xml_helper));
        for (name, text) in TEMPLATES {
            h.register_template_string(name, *text)
                .expect("built-in templates are valid handlebars");
        }
        h
    })
}

/// Renders the built-in template `name` with `data`.
pub fn render(name: &str, data: &serde_json::Value) -> Result<String, StepError> {
    registry()
        .render(name, data)
        .map(|s| s.trim_end().to_owned())
        .map_err(|e| StepError::Render {
            what: name.to_owned(),
            detail: e.to_string(),
        })
}
