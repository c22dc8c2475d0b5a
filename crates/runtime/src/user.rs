//! Who a container's process runs as: the image config's `User` (`name`, `uid`, `uid:gid`,
//! `name:group`, ...) or the pod's `runAsUser`/`runAsGroup`, resolved against the image's own
//! `/etc/passwd` and `/etc/group` (read inside the root filesystem, links confined to it), as
//! containerd's CRI plugin does.

use std::path::{Path, PathBuf};

/// Larger account files than this are refused rather than read into memory.
const ACCOUNT_FILE_LIMIT: u64 = 16 << 20;

/// What the pod and image ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRequest {
    /// The image config's `User`; empty or absent means root.
    pub image_user: Option<String>,
    /// `securityContext.runAsUser`: replaces the user part of the image's `User`.
    pub run_as_user: Option<u32>,
    /// `securityContext.runAsGroup`: replaces the primary group.
    pub run_as_group: Option<u32>,
    /// The pod's `supplementalGroups`, added to the groups the image gives the user.
    pub supplemental_groups: Vec<u32>,
}

impl UserRequest {
    /// Just the image's `User` string.
    pub fn image(user: &str) -> UserRequest {
        UserRequest {
            image_user: Some(user.to_string()),
            ..UserRequest::default()
        }
    }
}

/// The ids the process gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary group, the image's groups listing the user, then
    /// the pod's `supplementalGroups`.
    pub additional_gids: Vec<u32>,
    /// The user's name, when `/etc/passwd` has one for the uid.
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {user:?}: no matching entries in the image's /etc/passwd")]
    UnknownUser { user: String },
    #[error("unable to find group {group:?}: no matching entries in the image's /etc/group")]
    UnknownGroup { group: String },
    #[error("invalid user {user:?}: {reason}")]
    Invalid { user: String, reason: String },
    #[error("reading {} of the image (rootfs {}): {source}", .path.display(), .rootfs.display())]
    Read {
        rootfs: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Resolves `request` against the account files inside `rootfs`.
pub fn resolve(rootfs: &Path, request: &UserRequest) -> Result<ResolvedUser, UserError> {
    let files = AccountFiles::read(rootfs)?;
    resolve_with(&files, request)
}

/// The parsed `/etc/passwd` and `/etc/group` of an image (missing files are empty).
#[derive(Debug, Clone, Default)]
pub struct AccountFiles {
    users: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

impl AccountFiles {
    pub fn read(rootfs: &Path) -> Result<AccountFiles, UserError> {
        let read = |path: &str| -> Result<String, UserError> {
            let bytes = nodelet_sys::confined::read_file_in_root(
                rootfs,
                Path::new(path),
                ACCOUNT_FILE_LIMIT,
            )
            .map_err(|source| UserError::Read {
                rootfs: rootfs.to_path_buf(),
                path: path.into(),
                source,
            })?;
            Ok(bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        };
        Ok(AccountFiles::parse(
            &read("/etc/passwd")?,
            &read("/etc/group")?,
        ))
    }

    /// Parses the two files' text; malformed lines are skipped, as libc does.
    pub fn parse(passwd: &str, group: &str) -> AccountFiles {
        let fields = |line: &str| -> Option<Vec<String>> {
            let line = line.trim_end_matches('\r');
            (!line.is_empty() && !line.starts_with('#'))
                .then(|| line.split(':').map(str::to_string).collect())
        };
        let users = passwd
            .lines()
            .filter_map(fields)
            .filter_map(|f| {
                Some(PasswdEntry {
                    name: f.first()?.clone(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(fields)
            .filter_map(|f| {
                Some(GroupEntry {
                    name: f.first()?.clone(),
                    gid: f.get(2)?.parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        AccountFiles { users, groups }
    }

    fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// [`resolve`] over already-parsed account files.
pub fn resolve_with(
    files: &AccountFiles,
    request: &UserRequest,
) -> Result<ResolvedUser, UserError> {
    let image_user = request.image_user.as_deref().unwrap_or("").trim();
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (image_user, None),
    };
    if group_part.is_some_and(|g| g.contains(':')) {
        return Err(UserError::Invalid {
            user: image_user.into(),
            reason: "expected user[:group]".into(),
        });
    }
    if user_part.is_empty() && group_part.is_some() && request.run_as_user.is_none() {
        return Err(UserError::Invalid {
            user: image_user.into(),
            reason: "the user part is empty".into(),
        });
    }

    // The user: runAsUser, else the image's, else root. A number needs no passwd entry (its
    // primary group then comes from the entry if there is one, else 0); a name does.
    let entry = match (request.run_as_user, user_part) {
        (Some(uid), _) => UserEntry::Uid(uid),
        (None, "") => UserEntry::Uid(0),
        (None, text) => match parse_id(text) {
            Some(uid) => UserEntry::Uid(uid),
            None => UserEntry::Named(files.user_by_name(text).ok_or_else(|| {
                UserError::UnknownUser {
                    user: text.to_string(),
                }
            })?),
        },
    };
    let (uid, passwd) = match entry {
        UserEntry::Uid(uid) => (uid, files.user_by_uid(uid)),
        UserEntry::Named(e) => (e.uid, Some(e)),
    };

    let gid = match (request.run_as_group, group_part) {
        (Some(gid), _) => gid,
        (None, Some(group)) if !group.is_empty() => match parse_id(group) {
            Some(gid) => gid,
            None => {
                files
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .ok_or_else(|| UserError::UnknownGroup {
                        group: group.to_string(),
                    })?
                    .gid
            }
        },
        _ => passwd.map_or(0, |e| e.gid),
    };

    // The primary group first, as containerd lists it (and runc adds it anyway), so every
    // runtime reports the same groups.
    let mut additional_gids = vec![gid];
    if let Some(name) = passwd.map(|e| e.name.as_str()) {
        for group in files
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
        {
            additional_gids.push(group.gid);
        }
    }
    additional_gids.extend(&request.supplemental_groups);
    let mut seen = std::collections::BTreeSet::new();
    additional_gids.retain(|g| seen.insert(*g));

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        name: passwd.map(|e| e.name.clone()),
    })
}

enum UserEntry<'a> {
    Uid(u32),
    Named(&'a PasswdEntry),
}

/// A decimal id; `4294967295` is `(uid_t)-1`, never a real id.
fn parse_id(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|id| *id != u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:app:/home/app:/bin/sh\n\
        broken line\nweb:x:33:33::/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\napp:x:1000:\nwheel:x:10:app,web\nstaff:x:50:app\nwww-data:x:33:\n";

    fn files() -> AccountFiles {
        AccountFiles::parse(PASSWD, GROUP)
    }

    fn resolve_image(user: &str) -> Result<ResolvedUser, UserError> {
        resolve_with(&files(), &UserRequest::image(user))
    }

    fn ids(user: &ResolvedUser) -> (u32, u32, Vec<u32>) {
        (user.uid, user.gid, user.additional_gids.clone())
    }

    #[test]
    fn image_user_forms() {
        for (user, expected) in [
            ("", (0, 0, vec![0])),
            ("root", (0, 0, vec![0])),
            ("app", (1000, 1000, vec![1000, 10, 50])),
            ("1000", (1000, 1000, vec![1000, 10, 50])),
            ("1000:1000", (1000, 1000, vec![1000, 10, 50])),
            ("app:staff", (1000, 50, vec![50, 10])),
            ("app:33", (1000, 33, vec![33, 10, 50])),
            ("33:wheel", (33, 10, vec![10])),
            ("4242", (4242, 0, vec![0])),
            ("4242:4243", (4242, 4243, vec![4243])),
        ] {
            let resolved = resolve_image(user).unwrap_or_else(|e| panic!("{user}: {e}"));
            assert_eq!(ids(&resolved), expected, "{user:?}");
        }
        assert_eq!(resolve_image("web").unwrap().name.as_deref(), Some("web"));
    }

    #[test]
    fn pod_settings_override_the_image() {
        let request = UserRequest {
            image_user: Some("app".into()),
            run_as_user: Some(33),
            run_as_group: Some(7),
            supplemental_groups: vec![50, 7, 8],
        };
        let resolved = resolve_with(&files(), &request).unwrap();
        assert_eq!(ids(&resolved), (33, 7, vec![7, 10, 50, 8]));
        let only_group = UserRequest {
            image_user: Some("app".into()),
            run_as_group: Some(5),
            ..Default::default()
        };
        assert_eq!(
            ids(&resolve_with(&files(), &only_group).unwrap()),
            (1000, 5, vec![5, 10, 50])
        );
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let err = resolve_image("ghost").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user \"ghost\": no matching entries in the image's /etc/passwd"
        );
        let err = resolve_image("app:ghosts").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group \"ghosts\": no matching entries in the image's /etc/group"
        );
        let err = resolve_image("a:b:c").unwrap_err();
        assert!(err.to_string().contains("user[:group]"), "{err}");
        let err = resolve_image(":5").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        // No account files at all: names fail, numbers work.
        let empty = AccountFiles::default();
        assert!(matches!(
            resolve_with(&empty, &UserRequest::image("app")),
            Err(UserError::UnknownUser { .. })
        ));
        assert_eq!(
            ids(&resolve_with(&empty, &UserRequest::image("5:6")).unwrap()),
            (5, 6, vec![6])
        );
    }

    #[test]
    fn reads_the_files_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        std::os::unix::fs::symlink("/../../etc/groups-elsewhere", root.path().join("etc/group"))
            .unwrap();
        let resolved = resolve(root.path(), &UserRequest::image("app")).unwrap();
        assert_eq!(ids(&resolved), (1000, 1000, vec![1000]));
    }
}
