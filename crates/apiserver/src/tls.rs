//! The data directory's PKI: a CA made at first start, a serving certificate for the loopback
//! names and the node's hostname, an admin client certificate (`CN=admin`, `O=system:masters`),
//! a bearer token, and the admin kubeconfig that holds them.
//!
//! Everything is ECDSA P-256 (rcgen on aws-lc-rs). Files are written 0600 in a 0700 directory,
//! each through a temporary file and a rename, so a crash never leaves half a key behind. A
//! later start reuses what is there: the CA stays, so kubeconfigs handed out keep working.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// What can go wrong making or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file of the data directory.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating a key or certificate.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A PEM file that does not hold what it should.
    #[error("reading {}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// File names inside the data directory.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";
/// The admin bearer token (an alternative to the client certificate, e.g. for curl).
pub const TOKEN: &str = "token";
/// The admin kubeconfig.
pub const KUBECONFIG: &str = "kubeconfig";

/// The PKI of one data directory, loaded.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_pem: String,
    ca_der: CertificateDer<'static>,
    /// The admin bearer token.
    pub token: String,
    /// The admin client certificate, PEM (for in-process clients and tests).
    pub admin_cert_pem: String,
    /// The admin client key, PEM.
    pub admin_key_pem: String,
}

impl std::fmt::Debug for Pki {
    /// Never shows keys or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (0700) if missing and tightens it if it exists.
pub fn ensure_private_dir(dir: &Path) -> Result<(), TlsError> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create directory", dir))?;
    }
    fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(io("chmod", dir))
}

/// Writes `contents` to `path` with mode 0600 via a temporary file and a rename.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(contents).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename into", path))
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(io("read", path))
}

/// The current year, for certificate validity windows.
fn this_year() -> i32 {
    i32::from(
        jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .year(),
    )
}

fn validity(params: &mut CertificateParams, years: i32) {
    let year = this_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn key(what: &'static str) -> Result<KeyPair, TlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| TlsError::Generate { what, source })
}

/// Random bytes from the system's CSPRNG (aws-lc-rs).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // Filling from the system RNG only fails if the OS has no entropy source at all.
    aws_lc_rs::rand::fill(&mut out).expect("system random number generator");
    out
}

/// Makes a fresh CA, serving certificate, admin certificate and token in `dir`.
fn generate(dir: &Path, server_names: &[String]) -> Result<(), TlsError> {
    let gen_err = |what| move |source| TlsError::Generate { what, source };

    let ca_key = key("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("CA"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nodelet-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, 10);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err("CA"))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = key("server key")?;
    let mut server_params =
        CertificateParams::new(server_names.to_vec()).map_err(gen_err("serving certificate"))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "nodelet-apiserver");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut server_params, 5);
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(gen_err("serving certificate"))?;

    let admin_key = key("admin key")?;
    let mut admin_params =
        CertificateParams::new(Vec::<String>::new()).map_err(gen_err("admin certificate"))?;
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "admin");
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut admin_params, 5);
    let admin_cert = admin_params
        .signed_by(&admin_key, &issuer)
        .map_err(gen_err("admin certificate"))?;

    let token = hex(&random_bytes::<24>());

    // The CA certificate goes last: its presence is what marks the PKI as complete.
    write_private(&dir.join(CA_KEY), ca_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(SERVER_KEY), server_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(SERVER_CERT), server_cert.pem().as_bytes())?;
    write_private(&dir.join(ADMIN_KEY), admin_key.serialize_pem().as_bytes())?;
    write_private(&dir.join(ADMIN_CERT), admin_cert.pem().as_bytes())?;
    write_private(&dir.join(TOKEN), format!("{token}\n").as_bytes())?;
    write_private(&dir.join(CA_CERT), ca_cert.pem().as_bytes())?;
    Ok(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pki {
    /// Loads the PKI of `dir`, generating it first when `dir` has none. `server_names` are the
    /// serving certificate's subject alternative names (used only when generating).
    pub fn ensure(dir: &Path, server_names: &[String]) -> Result<Pki, TlsError> {
        ensure_private_dir(dir)?;
        if !dir.join(CA_CERT).exists() {
            generate(dir, server_names)?;
        }
        Pki::load(dir)
    }

    /// Loads an existing PKI.
    pub fn load(dir: &Path) -> Result<Pki, TlsError> {
        let ca_pem = read(&dir.join(CA_CERT))?;
        let ca_der = first_cert(&dir.join(CA_CERT), &ca_pem)?;
        let server_path = dir.join(SERVER_CERT);
        let server_chain = CertificateDer::pem_slice_iter(read(&server_path)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsError::Pem {
                path: server_path.clone(),
                message: err.to_string(),
            })?;
        if server_chain.is_empty() {
            return Err(TlsError::Pem {
                path: server_path,
                message: "no certificate".into(),
            });
        }
        let token = read(&dir.join(TOKEN))?.trim().to_owned();
        Ok(Pki {
            ca_pem,
            server_chain,
            server_key_pem: read(&dir.join(SERVER_KEY))?,
            ca_der,
            token,
            admin_cert_pem: read(&dir.join(ADMIN_CERT))?,
            admin_key_pem: read(&dir.join(ADMIN_KEY))?,
        })
    }

    /// The rustls server configuration: our serving certificate, HTTP/2 and HTTP/1.1 by ALPN,
    /// and client certificates verified against our CA but optional, so that a request without
    /// one reaches the HTTP layer and gets a `401` Status instead of a TLS alert.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|err| TlsError::Verifier(err.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).map_err(|err| {
            TlsError::Pem {
                path: PathBuf::from(SERVER_KEY),
                message: err.to_string(),
            }
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The admin kubeconfig for `server` (`https://127.0.0.1:6443`): user `admin` with the
    /// client certificate (the default context), and user `admin-token` with the bearer token.
    pub fn kubeconfig(&self, server: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: nodelet\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
             - name: admin-token\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: nodelet\n  context:\n    cluster: nodelet\n    user: admin\n\
             - name: nodelet-token\n  context:\n    cluster: nodelet\n    user: admin-token\n\
             current-context: nodelet\n",
            ca = b64(&self.ca_pem),
            cert = b64(&self.admin_cert_pem),
            key = b64(&self.admin_key_pem),
            token = self.token,
        )
    }
}

fn first_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|err| TlsError::Pem {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_with_private_modes_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("server");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = Pki::ensure(&data, &names).unwrap();
        let second = Pki::ensure(&data, &names).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "the CA is kept across starts");
        assert_eq!(first.token, second.token);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in [
            CA_CERT,
            CA_KEY,
            SERVER_CERT,
            SERVER_KEY,
            ADMIN_CERT,
            ADMIN_KEY,
            TOKEN,
        ] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        first.server_config().unwrap();
        let kubeconfig = first.kubeconfig("https://127.0.0.1:6443");
        assert!(kubeconfig.contains("client-certificate-data: "));
        assert!(kubeconfig.contains("server: https://127.0.0.1:6443"));
    }
}
