//! One CNCF distribution registry process (Debian's `docker-registry`) with a configuration of
//! ours: plain HTTP or TLS, anonymous, htpasswd or token auth, read-only or writable storage.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

pub const REGISTRY_BINARY: &str = "docker-registry";

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum Auth {
    Anonymous,
    /// HTTP basic against a bcrypt htpasswd file.
    Htpasswd {
        file: PathBuf,
    },
    /// Bearer tokens from a token server, signed by a key the CA bundle vouches for.
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_bundle: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct RegistrySpec {
    /// Short name, used for the config and log file names.
    pub name: String,
    /// Directory for `<name>.yml` and `<name>.log`.
    pub dir: PathBuf,
    pub storage: PathBuf,
    /// Refuses pushes and deletes; lets several registries share one cached storage tree.
    pub read_only: bool,
    /// `(certificate, key)` PEM files; plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: Auth,
}

/// A running registry; killed and reaped when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    addr: SocketAddr,
}

impl RegistryProcess {
    pub fn start(spec: &RegistrySpec) -> Result<RegistryProcess, Error> {
        // A port picked by binding :0 can be taken again before the registry binds it; retry.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(spec) {
                Ok(process) => return Ok(process),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::setup("registry did not start")))
    }

    fn start_once(spec: &RegistrySpec) -> Result<RegistryProcess, Error> {
        let addr = free_loopback_port()?;
        fs::create_dir_all(&spec.dir)?;
        fs::create_dir_all(&spec.storage)?;
        let config = spec.dir.join(format!("{}.yml", spec.name));
        fs::write(&config, config_yaml(spec, addr))?;
        let log_path = spec.dir.join(format!("{}.log", spec.name));
        let log = File::create(&log_path)?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                Error::setup(format!(
                    "starting {REGISTRY_BINARY} (apt-get install docker-registry): {e}"
                ))
            })?;
        let mut process = RegistryProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = process.child.try_wait()? {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(Error::setup(format!(
                    "registry {} exited with {status}: {log}",
                    spec.name
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(process);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(Error::setup(format!(
            "registry {} did not listen on {addr} within 15 s",
            spec.name
        )))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_loopback_port() -> Result<SocketAddr, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn config_yaml(spec: &RegistrySpec, addr: SocketAddr) -> String {
    let storage = yaml_path(&spec.storage);
    let mut yaml = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {read_only}
health:
  storagedriver:
    enabled: false
http:
  addr: {addr}
  secret: nodelet-testbed-upload-state-secret
  headers:
    X-Content-Type-Options: [nosniff]
",
        read_only = spec.read_only
    );
    // Must directly follow the `http:` block it belongs to.
    if let Some((cert, key)) = &spec.tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_path(cert),
            yaml_path(key)
        ));
    }
    match &spec.auth {
        Auth::Anonymous => {}
        Auth::Htpasswd { file } => {
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: nodelet-testbed\n    path: {}\n",
                yaml_path(file)
            ));
        }
        Auth::Token {
            realm,
            service,
            issuer,
            root_cert_bundle,
        } => {
            yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                yaml_path(root_cert_bundle)
            ));
        }
    }
    yaml
}

/// A path as a double-quoted YAML scalar (temp dirs may hold characters YAML treats specially).
fn yaml_path(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).unwrap_or_default()
}
