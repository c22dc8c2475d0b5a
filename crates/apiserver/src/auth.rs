//! Authentication: a client certificate signed by our CA (user = CN, groups = O), or the
//! admin bearer token. Anything else is refused with a `401` Status. Every authenticated user
//! may do everything for now (a single-node cluster with one admin and, later, the node
//! itself); authorization plugs in here.

use axum::http::HeaderMap;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user name (`admin`, `system:node:<name>`).
    pub name: String,
    /// Groups (`system:masters`).
    pub groups: Vec<String>,
}

impl User {
    /// The admin: what the kubeconfig's certificate and the token authenticate as.
    pub fn admin() -> User {
        User {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
}

/// What the connection established, put into each request's extensions by the accept loop
/// (or by an in-process client).
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The user of a verified client certificate.
    pub user: Option<User>,
}

/// The user of a client certificate rustls already verified against our CA.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push("system:authenticated".into());
    Some(User { name, groups })
}

/// The user of a request: its certificate's, else the bearer token's.
pub fn authenticate(peer: Option<&Peer>, headers: &HeaderMap, token: &str) -> Option<User> {
    if let Some(user) = peer.and_then(|p| p.user.clone()) {
        return Some(user);
    }
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    let ok = !token.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            presented.as_bytes(),
            token.as_bytes(),
        )
        .is_ok();
    ok.then(User::admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(authenticate(None, &headers, "secret"), None);
        headers.insert("authorization", "Bearer wrong".parse().unwrap());
        assert_eq!(authenticate(None, &headers, "secret"), None);
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        assert_eq!(authenticate(None, &headers, "secret"), Some(User::admin()));
        assert_eq!(authenticate(None, &headers, ""), None);
    }

    #[test]
    fn users_from_certificates() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "admin");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&key).unwrap();
        let user = user_from_cert(cert.der()).unwrap();
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups[0], "system:masters");
    }
}
