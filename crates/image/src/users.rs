//! `/etc/passwd` and `/etc/group` of the image, from the users the services
//! run as ([`Description::accounts`]): root (0) first, then each service
//! user with the fixed id the description gives it (from 100, in order of
//! first mention). No passwords: every account but root's is locked, with
//! no shell, and init reads the numeric ids from `system.json`, not these
//! files; they are here for `ps`, `ls -l` and the operator.

use wanflash_schema::description::{Accounts, Description};

use crate::tree::Tree;

/// The two files' contents, deterministic. `root_shell` is root's login
/// shell: `/bin/sh`, or on an image with SSH and no shell key the
/// `wanctl`-only wrapper (`wanflash_schema::ssh::session_shell`).
pub fn render(accounts: &Accounts, root_shell: &str) -> (String, String) {
    let mut passwd = String::new();
    for u in &accounts.users {
        if u.uid == 0 {
            passwd.push_str(&format!("root:x:0:0:root:/root:{root_shell}\n"));
        } else {
            passwd.push_str(&format!(
                "{n}:x:{}:{}:wanflash service {n}:/:/sbin/nologin\n",
                u.uid,
                u.gid,
                n = u.name
            ));
        }
    }
    let mut group = String::new();
    for (name, gid) in &accounts.groups {
        group.push_str(&format!("{name}:x:{gid}:\n"));
    }
    (passwd, group)
}

/// Writes `/etc/passwd` and `/etc/group` into the tree (over an overlay's).
pub fn add(tree: &mut Tree, desc: &Description) {
    let shell = wanflash_schema::ssh::session_shell(desc.ssh.as_ref());
    let (passwd, group) = render(&desc.accounts(), shell);
    tree.file("/etc/passwd", passwd.into_bytes(), 0o644, "wanflash");
    tree.file("/etc/group", group.into_bytes(), 0o644, "wanflash");
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanflash_schema::description::Account;

    #[test]
    fn passwd_and_group_list_root_then_the_service_users() {
        let a = Accounts {
            users: vec![
                Account {
                    name: "root".into(),
                    uid: 0,
                    gid: 0,
                },
                Account {
                    name: "failoverd".into(),
                    uid: 100,
                    gid: 100,
                },
            ],
            groups: vec![("root".into(), 0), ("failoverd".into(), 100)],
        };
        let (p, g) = render(&a, "/bin/sh");
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/bin/sh\nfailoverd:x:100:100:wanflash service failoverd:/:/sbin/nologin\n"
        );
        assert_eq!(g, "root:x:0:\nfailoverd:x:100:\n");
        let (p, _) = render(&a, "/usr/bin/wanctl-ssh");
        assert!(
            p.starts_with("root:x:0:0:root:/root:/usr/bin/wanctl-ssh\n"),
            "{p}"
        );
    }
}
