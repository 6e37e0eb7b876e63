//! A program's JSON configuration file, written by the builder.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::IoError;

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `failed to read `PATH`: ...`.
    #[error(transparent)]
    Read(#[from] IoError),
    /// Not JSON, or not this program's: serde_json's message names the
    /// key (`missing field `interface``) and the line and column.
    #[error("`{}`: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl LoadError {
    /// The message, with a file that does not parse called what it holds:
    /// ``invalid failover configuration `PATH`: missing field ...``.
    pub fn describe(&self, what: &str) -> String {
        match self {
            LoadError::Read(e) => e.to_string(),
            LoadError::Json { .. } => format!("invalid {what} {self}"),
        }
    }
}

/// Reads and parses `path`. The program's own checks of the values come
/// after, in the program.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = crate::fsx::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| LoadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        name: String,
    }

    #[test]
    fn errors_name_the_path_the_action_the_key_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let shown = path.display();
        let e = load::<Cfg>(&path).unwrap_err();
        assert!(matches!(e, LoadError::Read(_)));
        assert_eq!(
            e.describe("x configuration"),
            format!("failed to read `{shown}`: No such file or directory (os error 2)")
        );
        std::fs::write(&path, "{\n  \"nmae\": 1}").unwrap();
        let e = load::<Cfg>(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`{shown}`: unknown field `nmae`, expected `name` at line 2 column 8")
        );
        assert_eq!(
            e.describe("x configuration"),
            format!("invalid x configuration `{shown}`: unknown field `nmae`, expected `name` at line 2 column 8")
        );
        std::fs::write(&path, r#"{"name": "a"}"#).unwrap();
        assert_eq!(load::<Cfg>(&path).unwrap(), Cfg { name: "a".into() });
    }
}
