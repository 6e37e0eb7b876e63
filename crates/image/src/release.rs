//! `/etc/wanflash-release`: which image this is, its version, the source
//! commit it was built from and the build id, in `os-release` style. init
//! prints `PRETTY_NAME` on the console at boot.
//!
//! The commit is an input of the build like any file: it comes from
//! `WANFLASH_SOURCE_COMMIT` when set (the reproducibility check builds copies
//! of a checkout that are not git repositories), else from `git` in the
//! workspace (`<sha>-dirty` when tracked files differ from the commit), else
//! `unknown`.

use std::path::Path;
use std::process::{Command, Stdio};

/// Where the release file is in the image.
pub const RELEASE_PATH: &str = "/etc/wanflash-release";

/// Overrides the commit found with git.
pub const COMMIT_ENV: &str = "WANFLASH_SOURCE_COMMIT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub image: String,
    pub version: String,
    /// The description's `release` and `compatible` (A/B updates).
    pub release: u64,
    pub compatible: String,
    pub commit: String,
    pub build_id: String,
}

impl Release {
    /// The one line printed on the console.
    pub fn pretty(&self) -> String {
        format!(
            "wanflash {} {} (commit {}, build {})",
            self.image, self.version, self.commit, self.build_id
        )
    }

    /// The file's text.
    pub fn to_file(&self) -> String {
        format!(
            "NAME=wanflash\nIMAGE={}\nVERSION={}\nRELEASE={}\nCOMPATIBLE={}\nSOURCE_COMMIT={}\nBUILD_ID={}\nPRETTY_NAME=\"{}\"\n",
            self.image,
            self.version,
            self.release,
            self.compatible,
            self.commit,
            self.build_id,
            self.pretty()
        )
    }
}

/// `PRETTY_NAME` of a release file's text, unquoted.
pub fn pretty_name(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"'))
}

fn git(ws: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The source commit of the checkout at `ws`: see the module's doc.
pub fn source_commit(ws: &Path) -> String {
    if let Ok(c) = std::env::var(COMMIT_ENV) {
        if !c.trim().is_empty() {
            return c.trim().to_owned();
        }
    }
    git_commit(ws).unwrap_or_else(|| "unknown".into())
}

/// `<sha>` or `<sha>-dirty` from git, `None` outside a git checkout.
pub fn git_commit(ws: &Path) -> Option<String> {
    // Only a checkout whose top is `ws` counts: a copy inside some other
    // repository must not take that repository's commit.
    let top = git(ws, &["rev-parse", "--show-toplevel"])?;
    let same = std::fs::canonicalize(&top).ok()? == std::fs::canonicalize(ws).ok()?;
    if !same {
        return None;
    }
    let sha = git(ws, &["rev-parse", "HEAD"])?;
    let status = git(ws, &["status", "--porcelain", "--untracked-files=no"])?;
    Some(if status.is_empty() {
        sha
    } else {
        format!("{sha}-dirty")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_ok(dir: &Path, args: &[&str]) {
        let s = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(s.status.success(), "{s:?}");
    }

    #[test]
    fn release_file_has_every_field_and_the_pretty_line() {
        let r = Release {
            image: "wan-router".into(),
            version: "0.1.0".into(),
            release: 3,
            compatible: "wan".into(),
            commit: "abc-dirty".into(),
            build_id: "0123".into(),
        };
        let t = r.to_file();
        assert!(t.contains("IMAGE=wan-router\n"), "{t}");
        assert!(t.contains("RELEASE=3\nCOMPATIBLE=wan\n"), "{t}");
        assert!(t.contains("SOURCE_COMMIT=abc-dirty\n"), "{t}");
        assert!(t.contains("BUILD_ID=0123\n"), "{t}");
        assert_eq!(
            pretty_name(&t),
            Some("wanflash wan-router 0.1.0 (commit abc-dirty, build 0123)")
        );
    }

    #[test]
    fn commit_is_clean_dirty_or_unknown() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(git_commit(d.path()), None);
        git_ok(d.path(), &["init", "-q"]);
        std::fs::write(d.path().join("a"), "1").unwrap();
        git_ok(d.path(), &["add", "a"]);
        git_ok(d.path(), &["commit", "-q", "-m", "x"]);
        let clean = git_commit(d.path()).unwrap();
        assert_eq!(clean.len(), 40, "{clean}");
        std::fs::write(d.path().join("untracked"), "u").unwrap();
        assert_eq!(git_commit(d.path()).unwrap(), clean);
        std::fs::write(d.path().join("a"), "2").unwrap();
        assert_eq!(git_commit(d.path()).unwrap(), format!("{clean}-dirty"));
        // A folder inside the repository is not a checkout of its own.
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert_eq!(git_commit(&d.path().join("sub")), None);
    }
}
