//! `MAC=ACTION` assignments given on `parc serve`'s command line (lab runs, `parc reimage`
//! by hand): `format`, `format:BASE`, `capture:ROOM:VERSION`, `deploy:IMAGE_ID:HOSTNAME`,
//! `local`.

use super::tasks::{StoredAction, TaskError, normalize_mac};

/// Why an assignment could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    #[error("`{0}` is not MAC=ACTION")]
    Shape(String),
    #[error(transparent)]
    Mac(#[from] TaskError),
    #[error(
        "`{0}` is not an action: format[:BASE], capture:ROOM:VERSION, deploy:IMAGE_ID:HOSTNAME or local"
    )]
    Action(String),
}

/// Parses one `MAC=ACTION`.
pub fn parse_assignment(s: &str) -> Result<(String, StoredAction), AssignError> {
    let (mac, action) = s
        .split_once('=')
        .ok_or_else(|| AssignError::Shape(s.into()))?;
    let mac = normalize_mac(mac)?;
    let parts: Vec<&str> = action.split(':').collect();
    let action = match parts.as_slice() {
        ["local"] => StoredAction::LocalDisk,
        ["format"] => StoredAction::Format {
            base_image: String::new(),
            hostname: String::new(),
            inject: Vec::new(),
        },
        ["format", base] => StoredAction::Format {
            base_image: (*base).into(),
            hostname: String::new(),
            inject: Vec::new(),
        },
        ["capture", room, version] if !room.is_empty() && !version.is_empty() => {
            StoredAction::Capture {
                room: (*room).into(),
                image_version: (*version).into(),
            }
        }
        ["deploy", image, host] if !image.is_empty() && !host.is_empty() => StoredAction::Deploy {
            room: image.split('/').next().unwrap_or_default().into(),
            image_id: (*image).into(),
            hostname: (*host).into(),
            read_all: false,
        },
        _ => return Err(AssignError::Action(action.into())),
    };
    Ok((mac, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_action() {
        let (mac, a) = parse_assignment("52-54-00-77-00-05=deploy:b204/v3:b204-p05").unwrap();
        assert_eq!(mac, "52:54:00:77:00:05");
        assert_eq!(
            a,
            StoredAction::Deploy {
                room: "b204".into(),
                image_id: "b204/v3".into(),
                hostname: "b204-p05".into(),
                read_all: false,
            }
        );
        assert_eq!(
            parse_assignment("525400770005=format").unwrap().1,
            StoredAction::Format {
                base_image: String::new(),
                hostname: String::new(),
                inject: Vec::new(),
            }
        );
        assert_eq!(
            parse_assignment("525400770005=capture:b204:v4").unwrap().1,
            StoredAction::Capture {
                room: "b204".into(),
                image_version: "v4".into()
            }
        );
        assert_eq!(
            parse_assignment("525400770005=local").unwrap().1,
            StoredAction::LocalDisk
        );
    }

    #[test]
    fn refuses_bad_input_with_the_culprit() {
        assert_eq!(
            parse_assignment("format"),
            Err(AssignError::Shape("format".into()))
        );
        assert!(matches!(
            parse_assignment("52:54=format"),
            Err(AssignError::Mac(_))
        ));
        assert_eq!(
            parse_assignment("525400770005=deploy:img"),
            Err(AssignError::Action("deploy:img".into()))
        );
        assert_eq!(
            parse_assignment("525400770005=wipe"),
            Err(AssignError::Action("wipe".into()))
        );
    }
}
