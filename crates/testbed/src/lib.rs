//! # nodelet-testbed
//!
//! The real parts tests run against, all on loopback:
//! - registry **A** (`plain`): plain HTTP, anonymous, like a local mirror;
//! - registry **B** (`basic`): HTTPS with a CA made at set-up, htpasswd basic auth;
//! - registry **C** (`token`): HTTPS with bearer tokens from our token server, as Docker Hub
//!   does it; users may pull, or pull and push;
//! - the test images (`tiny`, `medium`, `multi`, `multi-docker`, `config`, `whiteout`, and
//!   `private` only on B and C), built offline from busybox-static once and cached.
//!
//! Tests call [`Bed::shared`]: the bed the test command started (`NODELET_TESTBED` names its
//! `bed.json`), or else one of their own. Shared registries are read-only, so tests cannot
//! interfere; a test that pushes starts an empty, writable bed with [`Bed::start`].
//!
//! **May not:** be a dependency of anything but tests, benchmarks and the demo script.

mod cache;
pub mod fault_proxy;
pub mod h2_server;
pub mod http_servers;
pub mod images;
mod pki;
mod registry;
mod token;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

pub use cache::{Prepared, prepare};
pub use images::{TestImage, WireFormat};

/// Version of the image recipe; a new value rebuilds the cache.
pub const RECIPE_VERSION: &str = "v1";
/// Environment variable naming the `bed.json` of a running shared bed.
pub const BED_ENV: &str = "NODELET_TESTBED";
/// Environment variable overriding the image cache directory.
pub const CACHE_ENV: &str = "NODELET_TESTBED_CACHE";
/// The static busybox the images are built from.
pub const BUSYBOX: &str = "/bin/busybox";
/// Service name registry C and the token server agree on (the JWT audience).
pub const TOKEN_SERVICE: &str = "nodelet-testbed-registry";
const TOKEN_ISSUER: &str = "nodelet-testbed-token-server";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("test bed set-up: {0}")]
    Setup(String),
    #[error("test bed: {0}")]
    Io(#[from] std::io::Error),
    #[error("test bed: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    fn setup(message: impl Into<String>) -> Error {
        Error::Setup(message.into())
    }
}

/// A user name and password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

/// One registry of the bed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistryInfo {
    /// `127.0.0.1:<port>`, the registry part of image references.
    pub host: String,
    /// `http://...` or `https://...`.
    pub url: String,
    pub pid: u32,
}

/// Everything a test needs to reach the bed: addresses, CA, credentials and the images.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BedInfo {
    pub dir: PathBuf,
    /// A: plain HTTP, anonymous.
    pub plain: RegistryInfo,
    /// B: HTTPS, htpasswd basic auth (both logins work).
    pub basic: RegistryInfo,
    /// C: HTTPS, bearer tokens from [`BedInfo::token_realm`].
    pub token: RegistryInfo,
    pub token_realm: String,
    pub token_service: String,
    /// One line per token request (see the token server).
    pub token_log: PathBuf,
    /// The CA that signed the HTTPS certificates of B, C and the token server.
    pub ca_cert: PathBuf,
    /// A `certs.d` tree: `<host:port>/ca.crt` for B, C and the token server, as
    /// `/etc/docker/certs.d` holds them.
    pub certs_d: PathBuf,
    /// May pull on B and C.
    pub puller: Login,
    /// May pull and push on B and C (push only where the bed is writable).
    pub pusher: Login,
    /// Registries are writable and start empty ([`Contents::Empty`]).
    pub writable: bool,
    /// The images by name (empty for an empty bed).
    pub images: BTreeMap<String, TestImage>,
    /// The OCI layout the images were built into.
    pub layout: PathBuf,
}

impl BedInfo {
    /// `<registry host>/<image>:v1`, e.g. `127.0.0.1:40123/tiny:v1`.
    pub fn reference(registry: &RegistryInfo, image: &str) -> String {
        format!("{}/{image}:v1", registry.host)
    }

    /// The `certs.d` directory for one registry (holds its `ca.crt`).
    pub fn cert_dir(&self, registry: &RegistryInfo) -> PathBuf {
        self.certs_d.join(&registry.host)
    }
}

/// What the registries serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// The cached test images, read-only.
    Images,
    /// Nothing yet, writable: for tests that push.
    Empty,
}

/// A bed: either attached to one running elsewhere, or running in this process (registries
/// are child processes, the token server a thread); the latter stops when dropped.
#[derive(Debug)]
pub struct Bed {
    info: BedInfo,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    // Registries go first: they are clients of nothing, but dropping them stops the ports.
    _registries: Vec<registry::RegistryProcess>,
    _token_server: token::TokenServer,
    _tempdir: Option<tempfile::TempDir>,
}

impl Bed {
    /// The bed the test command started, or a private one with the images when there is none.
    pub fn shared() -> Result<Bed, Error> {
        match std::env::var_os(BED_ENV) {
            Some(path) => {
                let bytes = fs::read(&path).map_err(|e| {
                    Error::setup(format!(
                        "reading {BED_ENV}={}: {e}",
                        Path::new(&path).display()
                    ))
                })?;
                Ok(Bed {
                    info: serde_json::from_slice(&bytes)?,
                    running: None,
                })
            }
            None => Bed::start(None, Contents::Images),
        }
    }

    /// Starts the three registries and the token server in `dir` (a temporary directory when
    /// `None`) and writes `dir/bed.json`.
    pub fn start(dir: Option<&Path>, contents: Contents) -> Result<Bed, Error> {
        let tempdir = match dir {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("nodelet-testbed.")
                    .tempdir()?,
            ),
        };
        let dir = dir
            .or(tempdir.as_ref().map(|t| t.path()))
            .map(Path::to_path_buf)
            .unwrap_or_default();
        fs::create_dir_all(&dir)?;
        let prepared = prepare(&cache_dir())?;
        let (storage_public, storage_all, images) = match contents {
            Contents::Images => (
                prepared.storage_public,
                prepared.storage_all.clone(),
                prepared.images,
            ),
            Contents::Empty => (
                dir.join("storage-plain"),
                dir.join("storage-auth"),
                BTreeMap::new(),
            ),
        };
        let read_only = contents == Contents::Images;
        let pki = pki::Pki::create(&dir.join("pki"))?;
        let puller = Login {
            username: "puller".into(),
            password: "puller-secret".into(),
        };
        let pusher = Login {
            username: "pusher".into(),
            password: "pusher-secret".into(),
        };
        let htpasswd = dir.join("htpasswd");
        write_htpasswd(&htpasswd, &[&puller, &pusher])?;

        let token_log = dir.join("token-requests.log");
        let token_server = token::TokenServer::start(
            token::TokenPolicy {
                issuer: TOKEN_ISSUER.into(),
                service: TOKEN_SERVICE.into(),
                users: vec![
                    token::TokenUser {
                        name: puller.username.clone(),
                        password: puller.password.clone(),
                        actions: vec!["pull".into()],
                    },
                    token::TokenUser {
                        name: pusher.username.clone(),
                        password: pusher.password.clone(),
                        actions: vec!["pull".into(), "push".into()],
                    },
                ],
                signer_cert_der: pki.token_signer_der.clone(),
                signer_pkcs8: pki.token_signer_pkcs8.clone(),
                log: token_log.clone(),
            },
            pki.rustls_server_config()?,
        )?;
        let tls = Some((pki.server_cert.clone(), pki.server_key.clone()));
        let spec = |name: &str, storage: &Path, tls: Option<(PathBuf, PathBuf)>, auth| {
            registry::RegistrySpec {
                name: name.into(),
                dir: dir.clone(),
                storage: storage.to_path_buf(),
                read_only,
                tls,
                auth,
            }
        };
        let plain = registry::RegistryProcess::start(&spec(
            "plain",
            &storage_public,
            None,
            registry::Auth::Anonymous,
        ))?;
        let basic = registry::RegistryProcess::start(&spec(
            "basic",
            &storage_all,
            tls.clone(),
            registry::Auth::Htpasswd { file: htpasswd },
        ))?;
        let token = registry::RegistryProcess::start(&spec(
            "token",
            &storage_all,
            tls,
            registry::Auth::Token {
                realm: token_server.realm(),
                service: TOKEN_SERVICE.into(),
                issuer: TOKEN_ISSUER.into(),
                root_cert_bundle: pki.ca_cert.clone(),
            },
        ))?;

        let info_of = |process: &registry::RegistryProcess, scheme: &str| RegistryInfo {
            host: process.addr().to_string(),
            url: format!("{scheme}://{}", process.addr()),
            pid: process.pid(),
        };
        let certs_d = dir.join("certs.d");
        let token_host = token_server
            .realm()
            .trim_start_matches("https://")
            .trim_end_matches("/token")
            .to_string();
        for host in [
            basic.addr().to_string(),
            token.addr().to_string(),
            token_host,
        ] {
            fs::create_dir_all(certs_d.join(&host))?;
            fs::copy(&pki.ca_cert, certs_d.join(&host).join("ca.crt"))?;
        }
        let info = BedInfo {
            dir: dir.clone(),
            plain: info_of(&plain, "http"),
            basic: info_of(&basic, "https"),
            token: info_of(&token, "https"),
            token_realm: token_server.realm(),
            token_service: TOKEN_SERVICE.into(),
            token_log,
            ca_cert: pki.ca_cert.clone(),
            certs_d,
            puller,
            pusher,
            writable: !read_only,
            images,
            layout: prepared.layout,
        };
        let tmp = dir.join("bed.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
        fs::rename(&tmp, dir.join("bed.json"))?;
        Ok(Bed {
            info,
            running: Some(Running {
                _registries: vec![plain, basic, token],
                _token_server: token_server,
                _tempdir: tempdir,
            }),
        })
    }

    pub fn info(&self) -> &BedInfo {
        &self.info
    }

    /// Whether this value runs the bed (as opposed to attaching to a shared one).
    pub fn is_owned(&self) -> bool {
        self.running.is_some()
    }
}

impl std::ops::Deref for Bed {
    type Target = BedInfo;
    fn deref(&self) -> &BedInfo {
        &self.info
    }
}

/// `$NODELET_TESTBED_CACHE`, else `target/testbed-cache` of this workspace.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/testbed-cache"),
    }
}

/// bcrypt entries, as distribution's htpasswd auth requires, made by apache2-utils' htpasswd.
fn write_htpasswd(path: &Path, logins: &[&Login]) -> Result<(), Error> {
    let mut text = String::new();
    for login in logins {
        let output = Command::new("htpasswd")
            .args(["-Bbn", &login.username, &login.password])
            .output()
            .map_err(|e| {
                Error::setup(format!(
                    "running htpasswd (apt-get install apache2-utils): {e}"
                ))
            })?;
        if !output.status.success() {
            return Err(Error::setup(format!(
                "htpasswd failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        text.push_str(String::from_utf8_lossy(&output.stdout).trim_end());
        text.push('\n');
    }
    fs::write(path, text)?;
    Ok(())
}
