//! Overlays: `overlays/<name>/` trees copied into the root filesystem in
//! order; a file ending `.tera` is rendered with the image's variables and
//! installed without the suffix.
//!
//! Modes are kept except the group and other write bits, which depend on
//! the umask of whoever checked the repository out (git records only the
//! executable bit), so that two checkouts give the same image.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::tree::Tree;
use crate::{fsx, Error};

/// Bits a checkout does not control.
const UMASK_BITS: u32 = 0o022;

/// A `.tera` file waiting for the template variables (which include the
/// build id, itself a hash of every overlay byte).
#[derive(Debug, Clone)]
pub struct Template {
    /// Path in the image, without `.tera`.
    pub path: String,
    /// `overlays/<name>/<file>.tera`, for errors.
    pub file: String,
    pub text: String,
    pub mode: u32,
}

/// Adds the overlay at `dir` (called `name`) to `tree` and feeds every
/// input byte into `hasher`. Templates get a placeholder in the tree and are
/// returned, to be rendered by [`render_all`] once the variables are known.
pub fn apply(
    tree: &mut Tree,
    name: &str,
    dir: &Path,
    hasher: &mut Sha256,
) -> Result<Vec<Template>, Error> {
    let mut templates = Vec::new();
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "overlay `{name}` does not exist: create the folder `{}` or remove `{name}` from `rootfs.overlays`",
            dir.display()
        )));
    }
    let origin = format!("overlays/{name}");
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry
            .map_err(|e| Error::Input(format!("cannot walk overlay `{}`: {e}", dir.display())))?;
        let rel = entry.path().strip_prefix(dir).map_err(|_| {
            Error::Input(format!(
                "path `{}` escapes overlay `{name}`",
                entry.path().display()
            ))
        })?;
        let Some(rel) = rel.to_str() else {
            return Err(Error::Input(format!(
                "`{}` has a name that is not UTF-8: rename it",
                entry.path().display()
            )));
        };
        if rel.is_empty() {
            continue;
        }
        let meta = fsx::symlink_metadata(entry.path())?;
        let mode = meta.permissions().mode() & 0o7777 & !UMASK_BITS;
        let ft = meta.file_type();
        hasher.update(rel.as_bytes());
        hasher.update(mode.to_le_bytes());
        if ft.is_dir() {
            tree.dir(rel, mode, &origin);
        } else if ft.is_symlink() {
            let target = fsx::read_link(entry.path())?;
            let target = target.to_str().ok_or_else(|| {
                Error::Input(format!(
                    "symlink `{}` has a non UTF-8 target",
                    entry.path().display()
                ))
            })?;
            hasher.update(target.as_bytes());
            tree.symlink(rel, target, &origin);
        } else if ft.is_file() {
            let data = fsx::read(entry.path())?;
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(&data);
            if let Some(out) = rel.strip_suffix(".tera") {
                let text = String::from_utf8(data).map_err(|_| {
                    Error::Input(format!(
                        "template `{}` is not UTF-8 text",
                        entry.path().display()
                    ))
                })?;
                let t = Template {
                    path: out.to_owned(),
                    file: format!("{origin}/{rel}"),
                    text,
                    mode,
                };
                // The placeholder's origin is the template's own path, so
                // render_all can tell whether a later overlay replaced it.
                tree.file(out, Vec::new(), mode, &t.file);
                templates.push(t);
            } else {
                tree.file(rel, data, mode, &origin);
            }
        } else {
            return Err(Error::Input(format!(
                "`{}` is a device, socket or fifo: overlays hold files, folders and symlinks only (init makes /dev at boot)",
                entry.path().display()
            )));
        }
    }
    Ok(templates)
}

/// Renders the templates whose placeholder no later overlay replaced.
pub fn render_all(
    tree: &mut Tree,
    templates: &[Template],
    ctx: &tera::Context,
) -> Result<(), Error> {
    for t in templates {
        if tree.get(&t.path).map(|e| e.origin.as_str()) == Some(t.file.as_str()) {
            let rendered = render(&t.file, &t.text, ctx)?;
            tree.file(&t.path, rendered.into_bytes(), t.mode, &t.file);
        }
    }
    Ok(())
}

/// Renders one template; an error names the file and, for syntax errors,
/// the line and column tera reports.
pub fn render(file: &str, text: &str, ctx: &tera::Context) -> Result<String, Error> {
    let mut t = tera::Tera::default();
    t.autoescape_on(vec![]);
    let result = t
        .add_raw_template(file, text)
        .and_then(|()| t.render(file, ctx));
    result.map_err(|e| {
        let mut msg = e.to_string();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        let flat = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        // tera (pest) writes the position as `--> 3:1`; say it in words.
        let position = flat.split("--> ").nth(1).and_then(|rest| {
            let pos = rest.split_whitespace().next()?;
            let (l, c) = pos.split_once(':')?;
            Some(format!("line {l}, column {c}: "))
        });
        Error::Template {
            file: file.to_owned(),
            message: format!("{}{flat}", position.unwrap_or_default()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tera::Context {
        let mut c = tera::Context::new();
        c.insert("hostname", "r1");
        c
    }

    #[test]
    fn renders_variables() {
        assert_eq!(
            render("t", "host {{ hostname }}\n", &ctx()).unwrap(),
            "host r1\n"
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = render("overlays/base/etc/motd.tera", "ok\n{{ hostname \n", &ctx())
            .unwrap_err()
            .to_string();
        assert!(err.contains("overlays/base/etc/motd.tera"), "{err}");
        assert!(err.contains("line 3, column 1"), "{err}");
    }

    #[test]
    fn undefined_variable_is_an_error() {
        let err = render("f.tera", "{{ nope }}", &ctx())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn overlay_copies_renders_and_keeps_modes() {
        let d = tempfile::tempdir().unwrap();
        let o = d.path().join("base");
        std::fs::create_dir_all(o.join("etc")).unwrap();
        std::fs::write(o.join("etc/hostname.tera"), "{{ hostname }}\n").unwrap();
        std::fs::write(o.join("etc/secret"), "x").unwrap();
        std::fs::set_permissions(o.join("etc/secret"), std::fs::Permissions::from_mode(0o660))
            .unwrap();
        std::os::unix::fs::symlink("hostname", o.join("etc/name")).unwrap();
        let mut t = Tree::new();
        let templates = apply(&mut t, "base", &o, &mut Sha256::new()).unwrap();
        render_all(&mut t, &templates, &ctx()).unwrap();
        assert_eq!(
            t.get("etc/hostname").unwrap().node,
            crate::tree::Node::File(b"r1\n".to_vec())
        );
        assert_eq!(t.get("etc/secret").unwrap().mode, 0o640);
        assert!(t.get("etc/hostname.tera").is_none());
        assert_eq!(
            t.get("etc/name").unwrap().node,
            crate::tree::Node::Symlink("hostname".into())
        );
    }

    #[test]
    fn missing_overlay_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let err = apply(
            &mut Tree::new(),
            "nope",
            &d.path().join("nope"),
            &mut Sha256::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("overlay `nope` does not exist"), "{err}");
    }
}
