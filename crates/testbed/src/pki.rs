//! Certificates for one bed: a CA made at set-up, a server certificate for 127.0.0.1 and
//! localhost (registries B and C, the token server), and the key that signs registry tokens.

use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::Error;

/// Files written under the bed's directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The token-signing certificate (issued by the CA); the registry trusts the CA.
    pub token_signer_der: Vec<u8>,
    /// PKCS#8 of the token-signing key, for ES256 signatures in fixed (r||s) form.
    pub token_signer_pkcs8: Vec<u8>,
}

impl Pki {
    pub fn create(dir: &Path) -> Result<Pki, Error> {
        fs::create_dir_all(dir)?;
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let mut ca_params = CertificateParams::new(Vec::new()).map_err(cert_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "nodelet testbed CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(cert_error)?;
        let mut server_params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "::1".to_string(),
        ])
        .map_err(cert_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "nodelet testbed registry");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(cert_error)?;

        let rng = SystemRandom::new();
        let signer_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::setup("generating the token-signing key"))?;
        let signer_key = KeyPair::try_from(signer_pkcs8.as_ref()).map_err(cert_error)?;
        let mut signer_params = CertificateParams::new(Vec::new()).map_err(cert_error)?;
        signer_params
            .distinguished_name
            .push(DnType::CommonName, "nodelet testbed token signer");
        let signer_cert = signer_params
            .signed_by(&signer_key, &issuer)
            .map_err(cert_error)?;

        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            token_signer_der: signer_cert.der().to_vec(),
            token_signer_pkcs8: signer_pkcs8.as_ref().to_vec(),
        };
        fs::write(&pki.ca_cert, ca_cert.pem())?;
        fs::write(&pki.server_cert, server_cert.pem())?;
        fs::write(&pki.server_key, server_key.serialize_pem())?;
        Ok(pki)
    }

    /// A rustls server configuration presenting the server certificate.
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&self.server_cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::setup(format!("reading {}: {e}", self.server_cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(&self.server_key)
            .map_err(|e| Error::setup(format!("reading {}: {e}", self.server_key.display())))?;
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::aws_lc_rs::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::setup(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::setup(format!("TLS server config: {e}")))
    }
}

fn cert_error(err: rcgen::Error) -> Error {
    Error::setup(format!("generating certificates: {err}"))
}
