//! Finding the node-wide docker config (spec §3.1).
//!
//! The kubelet looks for `config.json` in its root dir, its working directory,
//! `$HOME/.docker` and `/.docker`; only if none is valid does it look for a legacy
//! `.dockercfg` in its root dir, its working directory, `$HOME` and `/`. The first file that
//! can be read and parsed wins; a missing, unreadable or unparsable file is skipped.
//!
//! Every path is resolved under an `fs_root` (normally `/`) so tests can use a temporary
//! directory in place of the real filesystem root.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::basic::{InvalidRegistryKey, Keyring};
use super::credential::CredentialSource;
use super::docker_config::{ConfigParseError, NodeDockerConfig};

/// The kubelet's default `--root-dir`.
pub const DEFAULT_KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";
pub const CONFIG_JSON_FILE_NAME: &str = "config.json";
pub const DOCKERCFG_FILE_NAME: &str = ".dockercfg";

/// Which of the two formats a node file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFileFormat {
    /// `config.json`: `{"auths": {...}, "credHelpers": {...}, "credsStore": "..."}`.
    ConfigJson,
    /// `.dockercfg`: the bare registry map.
    Dockercfg,
}

impl NodeFileFormat {
    pub fn file_name(self) -> &'static str {
        match self {
            NodeFileFormat::ConfigJson => CONFIG_JSON_FILE_NAME,
            NodeFileFormat::Dockercfg => DOCKERCFG_FILE_NAME,
        }
    }

    fn parse(self, bytes: &[u8]) -> Result<NodeDockerConfig, ConfigParseError> {
        match self {
            NodeFileFormat::ConfigJson => NodeDockerConfig::from_config_json(bytes),
            NodeFileFormat::Dockercfg => NodeDockerConfig::from_dockercfg(bytes),
        }
    }
}

/// The directories the kubelet searches, from its flags and process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentialFiles {
    /// `--root-dir` (default `/var/lib/kubelet`).
    pub root_dir: PathBuf,
    /// The kubelet's working directory (absolute); relative search entries resolve here.
    pub cwd: PathBuf,
    /// `$HOME`; `None` when unset (then the kubelet's home entries fall back to the cwd).
    pub home: Option<PathBuf>,
}

/// A node docker config that was found and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentialFile {
    /// Where the kubelet sees the file (not prefixed with the search's `fs_root`).
    pub path: PathBuf,
    pub format: NodeFileFormat,
    pub config: NodeDockerConfig,
}

impl NodeCredentialFile {
    pub fn source(&self) -> CredentialSource {
        CredentialSource::NodeFile {
            path: self.path.clone(),
        }
    }

    /// The file's `auths` as a keyring (credential helpers are looked up separately).
    pub fn keyring(&self) -> (Keyring, Vec<InvalidRegistryKey>) {
        let mut keyring = Keyring::new();
        let skipped = keyring.add(&self.config.auths, &self.source());
        (keyring, skipped)
    }
}

/// A candidate file that exists but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNodeFile {
    pub path: PathBuf,
    pub reason: String,
}

/// No valid file in one search set. Displays as the kubelet's message, listing the search
/// directories as the kubelet writes them (its working directory is the empty entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't find valid {file_name} after checking in [{}]", DirList(.searched_dirs))]
pub struct NodeFileNotFound {
    pub file_name: &'static str,
    pub searched_dirs: Vec<PathBuf>,
    /// Files that existed but were unreadable or unparsable.
    pub skipped: Vec<SkippedNodeFile>,
}

/// Formats like Go's `%v` of a string slice: entries joined by single spaces.
struct DirList<'a>(&'a [PathBuf]);

impl fmt::Display for DirList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, dir) in self.0.iter().enumerate() {
            if position > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", dir.display())?;
        }
        Ok(())
    }
}

impl NodeCredentialFiles {
    pub fn new(
        root_dir: impl Into<PathBuf>,
        cwd: impl Into<PathBuf>,
        home: Option<PathBuf>,
    ) -> Self {
        Self {
            root_dir: root_dir.into(),
            cwd: cwd.into(),
            home,
        }
    }

    /// Takes the working directory and `$HOME` from this process (reads only).
    pub fn from_process(root_dir: impl Into<PathBuf>) -> Self {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        Self::new(root_dir, cwd, home)
    }

    /// The directories searched for `config.json`, as the kubelet lists them.
    pub fn config_json_search_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root_dir.clone(),
            PathBuf::new(),
            self.home_dir().join(".docker"),
            PathBuf::from("/.docker"),
        ]
    }

    /// The directories searched for `.dockercfg`, as the kubelet lists them.
    pub fn dockercfg_search_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root_dir.clone(),
            PathBuf::new(),
            self.home_dir(),
            PathBuf::from("/"),
        ]
    }

    /// The eight candidate files in search order, as absolute paths.
    pub fn candidate_paths(&self) -> Vec<PathBuf> {
        [NodeFileFormat::ConfigJson, NodeFileFormat::Dockercfg]
            .into_iter()
            .flat_map(|format| self.candidates(format))
            .collect()
    }

    /// The first valid `config.json` under `fs_root`.
    pub fn find_config_json(&self, fs_root: &Path) -> Result<NodeCredentialFile, NodeFileNotFound> {
        self.find_format(fs_root, NodeFileFormat::ConfigJson)
    }

    /// The first valid `.dockercfg` under `fs_root`.
    pub fn find_dockercfg(&self, fs_root: &Path) -> Result<NodeCredentialFile, NodeFileNotFound> {
        self.find_format(fs_root, NodeFileFormat::Dockercfg)
    }

    /// The first valid `config.json`, else the first valid `.dockercfg`. On failure the error
    /// is the `.dockercfg` one, as in the kubelet (which reports only the last search); the
    /// files skipped in both searches are in it.
    pub fn find(&self, fs_root: &Path) -> Result<NodeCredentialFile, NodeFileNotFound> {
        let config_json_error = match self.find_config_json(fs_root) {
            Ok(found) => return Ok(found),
            Err(error) => error,
        };
        self.find_dockercfg(fs_root).map_err(|mut error| {
            let mut skipped = config_json_error.skipped;
            skipped.append(&mut error.skipped);
            error.skipped = skipped;
            error
        })
    }

    /// [`Self::find`] on the real filesystem.
    pub fn find_on_host(&self) -> Result<NodeCredentialFile, NodeFileNotFound> {
        self.find(Path::new("/"))
    }

    fn home_dir(&self) -> PathBuf {
        self.home.clone().unwrap_or_default()
    }

    fn search_dirs(&self, format: NodeFileFormat) -> Vec<PathBuf> {
        match format {
            NodeFileFormat::ConfigJson => self.config_json_search_dirs(),
            NodeFileFormat::Dockercfg => self.dockercfg_search_dirs(),
        }
    }

    fn candidates(&self, format: NodeFileFormat) -> Vec<PathBuf> {
        self.search_dirs(format)
            .iter()
            .map(|dir| clean_absolute(&self.cwd.join(dir).join(format.file_name())))
            .collect()
    }

    fn find_format(
        &self,
        fs_root: &Path,
        format: NodeFileFormat,
    ) -> Result<NodeCredentialFile, NodeFileNotFound> {
        let mut skipped = Vec::new();
        for path in self.candidates(format) {
            let on_disk = under_root(fs_root, &path);
            let bytes = match std::fs::read(&on_disk) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "skipping unreadable docker config");
                    skipped.push(SkippedNodeFile {
                        path,
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            match format.parse(&bytes) {
                Ok(config) => {
                    tracing::debug!(path = %path.display(), "found docker config");
                    return Ok(NodeCredentialFile {
                        path,
                        format,
                        config,
                    });
                }
                Err(error) => {
                    tracing::info!(path = %path.display(), %error, "skipping invalid docker config");
                    skipped.push(SkippedNodeFile {
                        path,
                        reason: error.to_string(),
                    });
                }
            }
        }
        Err(NodeFileNotFound {
            file_name: format.file_name(),
            searched_dirs: self.search_dirs(format),
            skipped,
        })
    }
}

/// Lexically cleans an absolute path (`.` dropped, `..` pops, never above `/`), so a root-dir
/// with `..` cannot walk out of `fs_root`.
fn clean_absolute(path: &Path) -> PathBuf {
    let mut cleaned = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => cleaned.push(part),
            Component::ParentDir => {
                cleaned.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    cleaned
}

fn under_root(fs_root: &Path, absolute: &Path) -> PathBuf {
    fs_root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::credential::Credential;

    struct Tree {
        root: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            Self {
                root: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, absolute: &str, contents: &str) {
            let path = under_root(self.root.path(), Path::new(absolute));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }

        fn find(
            &self,
            files: &NodeCredentialFiles,
        ) -> Result<NodeCredentialFile, NodeFileNotFound> {
            files.find(self.root.path())
        }
    }

    fn files() -> NodeCredentialFiles {
        NodeCredentialFiles::new(
            "/var/lib/kubelet",
            "/work",
            Some(PathBuf::from("/home/kube")),
        )
    }

    fn config_json(user: &str) -> String {
        format!(r#"{{"auths":{{"r.io":{{"username":"{user}","password":"p"}}}}}}"#)
    }

    fn dockercfg(user: &str) -> String {
        format!(r#"{{"r.io":{{"username":"{user}","password":"p"}}}}"#)
    }

    const ORDER: [&str; 8] = [
        "/var/lib/kubelet/config.json",
        "/work/config.json",
        "/home/kube/.docker/config.json",
        "/.docker/config.json",
        "/var/lib/kubelet/.dockercfg",
        "/work/.dockercfg",
        "/home/kube/.dockercfg",
        "/.dockercfg",
    ];

    #[test]
    fn candidate_paths_are_the_eight_in_order() {
        let paths: Vec<PathBuf> = files().candidate_paths();
        let expected: Vec<PathBuf> = ORDER.iter().map(PathBuf::from).collect();
        assert_eq!(paths, expected);
    }

    #[test]
    fn each_path_wins_over_all_later_ones() {
        for (winner, path) in ORDER.iter().enumerate() {
            let tree = Tree::new();
            for (position, later) in ORDER.iter().enumerate().skip(winner) {
                let user = format!("user{position}");
                let contents = if later.ends_with("config.json") {
                    config_json(&user)
                } else {
                    dockercfg(&user)
                };
                tree.write(later, &contents);
            }
            let found = tree.find(&files()).unwrap();
            assert_eq!(found.path, PathBuf::from(path));
            assert_eq!(
                found.config.auths.get("r.io"),
                Some(&Credential::basic(format!("user{winner}"), "p")),
                "winner {path}"
            );
            let expected_format = if winner < 4 {
                NodeFileFormat::ConfigJson
            } else {
                NodeFileFormat::Dockercfg
            };
            assert_eq!(found.format, expected_format);
        }
    }

    #[test]
    fn unparsable_files_are_skipped_and_the_search_goes_on() {
        let tree = Tree::new();
        tree.write("/var/lib/kubelet/config.json", "{not json");
        tree.write(
            "/work/config.json",
            r#"{"auths":{"r.io":{"auth":"bm9jb2xvbg=="}}}"#,
        );
        // The right format is needed: a .dockercfg-shaped config.json is valid but empty.
        tree.write("/home/kube/.docker/config.json", &config_json("home"));
        let found = tree.find(&files()).unwrap();
        assert_eq!(found.path, PathBuf::from("/home/kube/.docker/config.json"));

        let tree = Tree::new();
        tree.write("/var/lib/kubelet/config.json", "[]");
        tree.write("/var/lib/kubelet/.dockercfg", "{");
        tree.write("/.dockercfg", &dockercfg("root"));
        let found = tree.find(&files()).unwrap();
        assert_eq!(found.path, PathBuf::from("/.dockercfg"));
        assert_eq!(found.keyring().0.lookup("r.io/x")[0].1, found.source());
    }

    #[test]
    fn directories_are_skipped() {
        let tree = Tree::new();
        std::fs::create_dir_all(under_root(
            tree.root.path(),
            Path::new("/var/lib/kubelet/config.json"),
        ))
        .unwrap();
        tree.write("/.docker/config.json", &config_json("root"));
        assert_eq!(
            tree.find(&files()).unwrap().path,
            PathBuf::from("/.docker/config.json")
        );
    }

    #[test]
    fn not_found_errors_use_the_kubelet_texts() {
        let tree = Tree::new();
        tree.write("/work/.dockercfg", "garbage");
        let error = tree.find(&files()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "couldn't find valid .dockercfg after checking in [/var/lib/kubelet  /home/kube /]"
        );
        assert_eq!(error.skipped.len(), 1);
        assert_eq!(error.skipped[0].path, PathBuf::from("/work/.dockercfg"));
        assert_eq!(
            files()
                .find_config_json(tree.root.path())
                .unwrap_err()
                .to_string(),
            "couldn't find valid config.json after checking in [/var/lib/kubelet  /home/kube/.docker /.docker]"
        );
        // Without $HOME the kubelet's list has empty entries (observed in kubelet logs).
        let homeless = NodeCredentialFiles::new("/var/lib/kubelet", "/work", None);
        assert_eq!(
            homeless
                .find_dockercfg(tree.root.path())
                .unwrap_err()
                .to_string(),
            "couldn't find valid .dockercfg after checking in [/var/lib/kubelet   /]"
        );
        assert_eq!(
            homeless
                .find_config_json(tree.root.path())
                .unwrap_err()
                .to_string(),
            "couldn't find valid config.json after checking in [/var/lib/kubelet  .docker /.docker]"
        );
    }

    #[test]
    fn without_home_the_home_entries_resolve_in_the_working_directory() {
        let homeless = NodeCredentialFiles::new("/var/lib/kubelet", "/work", None);
        let paths = homeless.candidate_paths();
        assert_eq!(paths[2], PathBuf::from("/work/.docker/config.json"));
        assert_eq!(paths[6], PathBuf::from("/work/.dockercfg"));
    }

    #[test]
    fn root_dir_cannot_escape_fs_root() {
        let escaping = NodeCredentialFiles::new("/../../..", "/", None);
        assert_eq!(escaping.candidate_paths()[0], PathBuf::from("/config.json"));
    }
}
