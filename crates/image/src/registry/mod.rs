//! Our registry client (distribution API v2, pull side) on reqwest: anonymous, basic and
//! bearer-token auth with tokens cached per credential; custom CAs; plain HTTP only for
//! registries configured insecure; mirrors; retries with back-off on 429, 5xx and resets;
//! blobs resumed with `Range`; manifests verified against their digest.

pub mod auth;
pub mod hosts;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::mpsc;

pub use hosts::{Endpoint, RegistryHosts, RegistrySettings};

use crate::digest::{Digest, Hasher};
use crate::keyring::Credential;
use crate::oci::{Descriptor, Index, MANIFEST_ACCEPT, ManifestKind, Platform};
use auth::{Challenge, TokenCache, credential_id};

/// Manifests and configs are small; anything larger is refused rather than buffered.
const MAX_DOCUMENT_BYTES: u64 = 8 * 1024 * 1024;
const USER_AGENT: &str = concat!("nodelet/", env!("CARGO_PKG_VERSION"));

/// A repository in a registry, e.g. registry `docker.io`, repository `library/busybox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRef {
    pub registry: String,
    pub repository: String,
}

impl std::fmt::Display for RepositoryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry} refused the credentials for {repository} (401 Unauthorized){detail}")]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("{registry} denied access to {repository} (403 Forbidden){detail}")]
    Forbidden {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("{what} not found in {registry}/{repository} (404 Not Found)")]
    NotFound {
        registry: String,
        repository: String,
        what: String,
    },
    #[error("TLS connection to {registry} failed: {cause}")]
    Tls { registry: String, cause: String },
    #[error("cannot reach {registry}: {cause}")]
    Unreachable { registry: String, cause: String },
    #[error("{registry} answered {status} for {what}{detail}")]
    Status {
        registry: String,
        what: String,
        status: StatusCode,
        detail: String,
    },
    #[error("{what} from {registry} has digest {actual}, expected {expected}")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} from {registry} is {actual} bytes, expected {expected}")]
    SizeMismatch {
        registry: String,
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("no matching manifest for {wanted} in {repository}: the index offers {offered}")]
    NoMatchingPlatform {
        repository: String,
        wanted: String,
        offered: String,
    },
    #[error("invalid {what} from {registry}: {cause}")]
    Invalid {
        registry: String,
        what: String,
        cause: String,
    },
    #[error("the token server {realm} failed: {cause}")]
    Token { realm: String, cause: String },
    #[error("download cancelled")]
    Cancelled,
}

/// Timeouts and retry limits. Defaults suit real registries; tests shorten them.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Longest silence while reading a response before the attempt fails.
    pub read_timeout: Duration,
    /// Attempts per request (the first try included) for 429, 5xx and transport errors.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Upper bound on a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A manifest or index as fetched, with the digest its bytes hash to.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
    pub kind: ManifestKind,
}

/// How an endpoint wants a credential presented, learned from its challenge.
#[derive(Debug, Clone)]
enum AuthMode {
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug, Default)]
pub struct RegistryClient {
    hosts: RegistryHosts,
    options: ClientOptions,
    http: Mutex<HashMap<String, reqwest::Client>>,
    tokens: TokenCache,
    /// By (endpoint host, credential id).
    auth_modes: Mutex<HashMap<(String, String), AuthMode>>,
}

impl RegistryClient {
    pub fn new(hosts: RegistryHosts, options: ClientOptions) -> RegistryClient {
        RegistryClient {
            hosts,
            options,
            ..RegistryClient::default()
        }
    }

    /// Fetches a manifest or index by tag or digest. A digest reference is verified; a tag's
    /// manifest is checked against `Docker-Content-Digest` when the registry sends one.
    pub async fn fetch_manifest(
        &self,
        repo: &RepositoryRef,
        reference: &str,
        credential: Option<&Credential>,
    ) -> Result<FetchedManifest, RegistryError> {
        let what = format!("manifest {reference}");
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let path = format!("/v2/{}/manifests/{reference}", repo.repository);
        let mut interruptions = 0u32;
        let (bytes, media_type, header_digest, endpoint) = loop {
            let (response, endpoint) = self.send(repo, &what, &path, &headers, credential).await?;
            let media_type = header_str(&response, header::CONTENT_TYPE);
            let header_digest = header_str(&response, "docker-content-digest");
            match read_document(response, &endpoint, &what, self.options.read_timeout).await {
                Ok(bytes) => break (bytes, media_type, header_digest, endpoint),
                // The body broke off or stalled: a transport failure, retried like one.
                Err(err @ RegistryError::Unreachable { .. }) => {
                    interruptions += 1;
                    if interruptions >= self.options.max_attempts {
                        return Err(err);
                    }
                    tracing::debug!(%what, error = %err, "retrying manifest download");
                    tokio::time::sleep(self.backoff(interruptions - 1)).await;
                }
                Err(err) => return Err(err),
            }
        };
        let expected = match Digest::parse(reference) {
            Ok(digest) => Some(digest),
            Err(_) => Digest::parse(&header_digest).ok(),
        };
        let digest = match &expected {
            Some(expected) => {
                let mut hasher = Hasher::new(expected.algorithm());
                hasher.update(&bytes);
                let actual = hasher.finish();
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        registry: endpoint.host.clone(),
                        what,
                        expected: expected.to_string(),
                        actual: actual.to_string(),
                    });
                }
                Digest::sha256_of(&bytes)
            }
            None => Digest::sha256_of(&bytes),
        };
        let kind =
            ManifestKind::parse(&media_type, &bytes).map_err(|cause| RegistryError::Invalid {
                registry: endpoint.host.clone(),
                what: what.clone(),
                cause,
            })?;
        let media_type = match (&kind, media_type.split(';').next().unwrap_or("").trim()) {
            (_, t) if !t.is_empty() && t != "application/json" => t.to_string(),
            (ManifestKind::Index(index), _) => index
                .media_type
                .clone()
                .unwrap_or_else(|| crate::oci::OCI_INDEX.into()),
            (ManifestKind::Image(manifest), _) => manifest
                .media_type
                .clone()
                .unwrap_or_else(|| crate::oci::OCI_MANIFEST.into()),
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            kind,
        })
    }

    /// Fetches a small blob (an image config) whole, verifying size and digest.
    pub async fn fetch_blob_bytes(
        &self,
        repo: &RepositoryRef,
        descriptor: &Descriptor,
        credential: Option<&Credential>,
    ) -> Result<Vec<u8>, RegistryError> {
        if descriptor.size > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::Invalid {
                registry: repo.registry.clone(),
                what: format!("blob {}", descriptor.digest),
                cause: format!("{} bytes is too large for a config", descriptor.size),
            });
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let collect = async {
            let mut bytes = Vec::with_capacity(descriptor.size as usize);
            while let Some(chunk) = rx.recv().await {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        };
        let (fetched, bytes) =
            tokio::join!(self.fetch_blob(repo, descriptor, credential, tx), collect);
        fetched?;
        verify_blob(&repo.registry, descriptor, &bytes)?;
        Ok(bytes)
    }

    /// Streams a blob into `sink` chunk by chunk. A connection that breaks (or a body that
    /// ends early) is resumed with `Range` from the last byte received, so `sink` sees one
    /// continuous stream; if the registry ignores the range, the bytes already sent are
    /// skipped. More bytes than the descriptor's size is an error. The caller verifies the
    /// digest of what it received.
    pub async fn fetch_blob(
        &self,
        repo: &RepositoryRef,
        descriptor: &Descriptor,
        credential: Option<&Credential>,
        sink: mpsc::Sender<Bytes>,
    ) -> Result<u64, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        let path = format!("/v2/{}/blobs/{}", repo.repository, descriptor.digest);
        let mut received: u64 = 0;
        let mut interruptions = 0u32;
        loop {
            let mut headers = HeaderMap::new();
            if received > 0 {
                let range = HeaderValue::from_str(&format!("bytes={received}-")).expect("ascii");
                headers.insert(header::RANGE, range);
            }
            let (response, endpoint) = self.send(repo, &what, &path, &headers, credential).await?;
            let mut skip = if received > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
                received
            } else {
                0
            };
            if received > 0 && response.status() == StatusCode::PARTIAL_CONTENT {
                let range = header_str(&response, header::CONTENT_RANGE);
                let start = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if start != Some(received) {
                    return Err(RegistryError::Invalid {
                        registry: endpoint.host.clone(),
                        what,
                        cause: format!(
                            "asked for bytes from {received}, got Content-Range {range:?}"
                        ),
                    });
                }
            }
            let mut body = response.bytes_stream();
            let interrupted = loop {
                match tokio::time::timeout(self.options.read_timeout, body.next()).await {
                    Err(_) => break format!("no data for {:?}", self.options.read_timeout),
                    Ok(None) if received < descriptor.size => {
                        break format!("body ended after {received} of {} bytes", descriptor.size);
                    }
                    Ok(None) => return Ok(received),
                    Ok(Some(Err(err))) => break error_chain(&err),
                    Ok(Some(Ok(mut chunk))) => {
                        if skip > 0 {
                            let dropped = skip.min(chunk.len() as u64);
                            skip -= dropped;
                            chunk = chunk.slice(dropped as usize..);
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        received += chunk.len() as u64;
                        if received > descriptor.size {
                            return Err(RegistryError::SizeMismatch {
                                registry: endpoint.host.clone(),
                                what,
                                expected: descriptor.size,
                                actual: received,
                            });
                        }
                        sink.send(chunk)
                            .await
                            .map_err(|_| RegistryError::Cancelled)?;
                    }
                }
            };
            interruptions += 1;
            if interruptions >= self.options.max_attempts {
                return Err(RegistryError::Unreachable {
                    registry: endpoint.host.clone(),
                    cause: format!("{what} interrupted {interruptions} times, last: {interrupted}"),
                });
            }
            tracing::debug!(%what, received, %interrupted, "resuming blob download");
            tokio::time::sleep(self.backoff(interruptions - 1)).await;
        }
    }

    /// Resolves a tag or digest to an image manifest for `platform`, going through an index
    /// when there is one. Returns the index (if any) and the image manifest.
    pub async fn resolve(
        &self,
        repo: &RepositoryRef,
        reference: &str,
        platform: &Platform,
        credential: Option<&Credential>,
    ) -> Result<(Option<FetchedManifest>, FetchedManifest), RegistryError> {
        let top = self.fetch_manifest(repo, reference, credential).await?;
        let ManifestKind::Index(index) = &top.kind else {
            return Ok((None, top));
        };
        let chosen = select_platform(index, platform).map_err(|offered| {
            RegistryError::NoMatchingPlatform {
                repository: repo.to_string(),
                wanted: platform.to_string(),
                offered,
            }
        })?;
        let manifest = self
            .fetch_manifest(repo, &chosen.digest, credential)
            .await?;
        if let ManifestKind::Index(_) = manifest.kind {
            return Err(RegistryError::Invalid {
                registry: repo.registry.clone(),
                what: format!("manifest {}", chosen.digest),
                cause: "an index entry points at another index".into(),
            });
        }
        Ok((Some(top), manifest))
    }

    /// Sends a GET to the first endpoint (mirror or registry) that answers it.
    async fn send(
        &self,
        repo: &RepositoryRef,
        what: &str,
        path: &str,
        headers: &HeaderMap,
        credential: Option<&Credential>,
    ) -> Result<(reqwest::Response, Endpoint), RegistryError> {
        let endpoints = self.hosts.endpoints(&repo.registry);
        let mut last_error = None;
        for endpoint in endpoints {
            let credential = if endpoint.is_mirror { None } else { credential };
            match self
                .send_to(&endpoint, repo, what, path, headers, credential)
                .await
            {
                Ok(response) => return Ok((response, endpoint)),
                Err(err) if endpoint.is_mirror => {
                    tracing::debug!(mirror = %endpoint.base_url, error = %err, "mirror failed, trying the next endpoint");
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or(RegistryError::Cancelled))
    }

    async fn send_to(
        &self,
        endpoint: &Endpoint,
        repo: &RepositoryRef,
        what: &str,
        path: &str,
        headers: &HeaderMap,
        credential: Option<&Credential>,
    ) -> Result<reqwest::Response, RegistryError> {
        let client = self.http_client(&repo.registry, endpoint)?;
        let mut url = format!("{}{path}", endpoint.base_url);
        if endpoint.is_mirror {
            url.push_str(&format!("?ns={}", repo.registry));
        }
        let scope = format!("repository:{}:pull", repo.repository);
        let cred_id = credential_id(credential);
        let mut attempt = 0u32;
        let mut challenged = false;
        loop {
            let mut request = client.get(&url).headers(headers.clone());
            if let Some(value) = self
                .authorization(&client, endpoint, &scope, credential, &cred_id)
                .await?
            {
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => {
                    let mut cause = error_chain(&err);
                    if is_tls_error(&cause) {
                        if cause.contains("InvalidContentType")
                            && endpoint.base_url.starts_with("https://")
                        {
                            cause.push_str(" (the server does not speak TLS: if it is a plain-HTTP registry, configure it insecure)");
                        }
                        return Err(RegistryError::Tls {
                            registry: endpoint.host.clone(),
                            cause,
                        });
                    }
                    attempt += 1;
                    // A mirror that cannot be reached is skipped at once: the next endpoint,
                    // not a back-off, is the remedy.
                    if attempt >= self.options.max_attempts || endpoint.is_mirror {
                        return Err(RegistryError::Unreachable {
                            registry: endpoint.host.clone(),
                            cause,
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt - 1)).await;
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            match status {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let challenges =
                        auth::parse_challenges(&header_str(&response, header::WWW_AUTHENTICATE));
                    if !self.learn(endpoint, &cred_id, credential, &challenges, &scope) {
                        let detail = error_detail(response).await;
                        return Err(RegistryError::Unauthorized {
                            registry: endpoint.host.clone(),
                            repository: repo.repository.clone(),
                            detail,
                        });
                    }
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(RegistryError::Unauthorized {
                        registry: endpoint.host.clone(),
                        repository: repo.repository.clone(),
                        detail: error_detail(response).await,
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Forbidden {
                        registry: endpoint.host.clone(),
                        repository: repo.repository.clone(),
                        detail: error_detail(response).await,
                    });
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        registry: endpoint.host.clone(),
                        repository: repo.repository.clone(),
                        what: what.to_string(),
                    });
                }
                s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                    attempt += 1;
                    if attempt >= self.options.max_attempts {
                        return Err(RegistryError::Status {
                            registry: endpoint.host.clone(),
                            what: what.to_string(),
                            status: s,
                            detail: format!(
                                " after {attempt} attempts{}",
                                error_detail(response).await
                            ),
                        });
                    }
                    let wait = retry_after(&response)
                        .map(|d| d.min(self.options.max_retry_after))
                        .unwrap_or_else(|| self.backoff(attempt - 1));
                    tracing::debug!(%what, status = %s, ?wait, "registry asked us to retry");
                    tokio::time::sleep(wait).await;
                }
                s => {
                    return Err(RegistryError::Status {
                        registry: endpoint.host.clone(),
                        what: what.to_string(),
                        status: s,
                        detail: error_detail(response).await,
                    });
                }
            }
        }
    }

    /// Records how the endpoint wants to be authenticated; false when we have nothing it
    /// would accept (a basic challenge and no credential, or no challenge at all).
    fn learn(
        &self,
        endpoint: &Endpoint,
        cred_id: &str,
        credential: Option<&Credential>,
        challenges: &[Challenge],
        scope: &str,
    ) -> bool {
        let has_login = credential.is_some_and(|c| !c.is_anonymous());
        let mode = challenges.iter().find_map(|challenge| match challenge {
            Challenge::Bearer { realm, service, .. } => Some(AuthMode::Bearer {
                realm: realm.clone(),
                service: service.clone().unwrap_or_default(),
            }),
            Challenge::Basic if has_login => Some(AuthMode::Basic),
            Challenge::Basic => None,
        });
        let key = (endpoint.host.clone(), cred_id.to_string());
        let mut modes = self.auth_modes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mode) = mode else { return false };
        if let Some(AuthMode::Bearer { realm, service }) = modes.get(&key) {
            // A cached token was refused (expired or revoked): fetch a new one.
            self.tokens.forget(realm, service, scope, cred_id);
        }
        modes.insert(key, mode);
        true
    }

    async fn authorization(
        &self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
        scope: &str,
        credential: Option<&Credential>,
        cred_id: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let mode = {
            let modes = self.auth_modes.lock().unwrap_or_else(|e| e.into_inner());
            modes
                .get(&(endpoint.host.clone(), cred_id.to_string()))
                .cloned()
        };
        let value = match mode {
            None => return Ok(None),
            Some(AuthMode::Basic) => match credential {
                Some(c) if !c.username.is_empty() => {
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("{}:{}", c.username, c.password))
                    )
                }
                _ => return Ok(None),
            },
            Some(AuthMode::Bearer { realm, service }) => {
                let now = Instant::now();
                let token = match self.tokens.get(&realm, &service, scope, cred_id, now) {
                    Some(token) => token,
                    None => {
                        let (token, expires_in) =
                            fetch_token(client, &realm, &service, scope, credential).await?;
                        self.tokens.put(
                            &realm,
                            &service,
                            scope,
                            cred_id,
                            token.clone(),
                            expires_in,
                            now,
                        );
                        token
                    }
                };
                format!("Bearer {token}")
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| RegistryError::Invalid {
            registry: endpoint.host.clone(),
            what: "credential".into(),
            cause: "not representable in an HTTP header".into(),
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    fn http_client(
        &self,
        registry: &str,
        endpoint: &Endpoint,
    ) -> Result<reqwest::Client, RegistryError> {
        let mut clients = self.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&endpoint.base_url) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.read_timeout)
            .pool_idle_timeout(Duration::from_secs(90));
        let mut roots = Vec::new();
        for file in self.hosts.extra_ca_files(registry, &endpoint.host) {
            let pem = std::fs::read(&file).map_err(|e| RegistryError::Tls {
                registry: endpoint.host.clone(),
                cause: format!("reading CA file {}: {e}", file.display()),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Tls {
                    registry: endpoint.host.clone(),
                    cause: format!("CA file {}: {e}", file.display()),
                })?;
            roots.extend(certs);
        }
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder.build().map_err(|e| RegistryError::Tls {
            registry: endpoint.host.clone(),
            cause: error_chain(&e),
        })?;
        clients.insert(endpoint.base_url.clone(), client.clone());
        Ok(client)
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        self.options
            .initial_backoff
            .saturating_mul(factor)
            .min(self.options.max_backoff)
    }
}

/// Picks the index entry for `wanted`, or lists what the index offers.
pub fn select_platform<'a>(index: &'a Index, wanted: &Platform) -> Result<&'a Descriptor, String> {
    let offered = |d: &Descriptor| d.platform.as_ref().is_some_and(|p| wanted.matches(p));
    // Prefer an entry whose variant is stated and equal over one that merely defaults.
    let exact = index.manifests.iter().find(|d| {
        offered(d)
            && d.platform
                .as_ref()
                .is_some_and(|p| p.variant.is_some() == wanted.variant.is_some())
    });
    exact
        .or_else(|| index.manifests.iter().find(|d| offered(d)))
        .ok_or_else(|| {
            let platforms: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(Platform::to_string)
                .collect();
            if platforms.is_empty() {
                "no platforms".to_string()
            } else {
                platforms.join(", ")
            }
        })
}

async fn fetch_token(
    client: &reqwest::Client,
    realm: &str,
    service: &str,
    scope: &str,
    credential: Option<&Credential>,
) -> Result<(String, Option<Duration>), RegistryError> {
    let token_error = |cause: String| RegistryError::Token {
        realm: realm.to_string(),
        cause,
    };
    if let Some(c) = credential.filter(|c| !c.registry_token.is_empty()) {
        return Ok((c.registry_token.clone(), None));
    }
    let request = match credential {
        // An identity token is an OAuth2 refresh token (docker login to some registries).
        Some(c) if !c.identity_token.is_empty() => client.post(realm).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.identity_token.as_str()),
            ("service", service),
            ("scope", scope),
            ("client_id", "nodelet"),
        ]),
        Some(c) if !c.username.is_empty() => client
            .get(realm)
            .query(&[("service", service), ("scope", scope)])
            .basic_auth(&c.username, Some(&c.password)),
        _ => client
            .get(realm)
            .query(&[("service", service), ("scope", scope)]),
    };
    let response = request
        .send()
        .await
        .map_err(|e| token_error(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(token_error(format!(
            "{status}{}",
            error_detail(response).await
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| token_error(format!("invalid answer: {e}")))?;
    let token = body
        .get("token")
        .or_else(|| body.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| token_error("answer holds no token".into()))?;
    let expires_in = body
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .map(Duration::from_secs);
    Ok((token.to_string(), expires_in))
}

/// Checks a whole blob against its descriptor.
pub fn verify_blob(
    registry: &str,
    descriptor: &Descriptor,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let what = format!("blob {}", descriptor.digest);
    if bytes.len() as u64 != descriptor.size {
        return Err(RegistryError::SizeMismatch {
            registry: registry.to_string(),
            what,
            expected: descriptor.size,
            actual: bytes.len() as u64,
        });
    }
    let expected = Digest::parse(&descriptor.digest).map_err(|cause| RegistryError::Invalid {
        registry: registry.to_string(),
        what: what.clone(),
        cause,
    })?;
    let mut hasher = Hasher::new(expected.algorithm());
    hasher.update(bytes);
    let actual = hasher.finish();
    if actual != expected {
        return Err(RegistryError::DigestMismatch {
            registry: registry.to_string(),
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

async fn read_document(
    response: reqwest::Response,
    endpoint: &Endpoint,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, RegistryError> {
    let invalid = |cause: String| RegistryError::Invalid {
        registry: endpoint.host.clone(),
        what: what.to_string(),
        cause,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES)
    {
        return Err(invalid(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    let broken = |cause: String| RegistryError::Unreachable {
        registry: endpoint.host.clone(),
        cause: format!("reading {what}: {cause}"),
    };
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    loop {
        match tokio::time::timeout(timeout, body.next()).await {
            Err(_) => return Err(broken(format!("no data for {timeout:?}"))),
            Ok(None) => return Ok(bytes),
            Ok(Some(Err(err))) => return Err(broken(error_chain(&err))),
            Ok(Some(Ok(chunk))) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
                    return Err(invalid(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
                }
            }
        }
    }
}

fn header_str(response: &reqwest::Response, name: impl header::AsHeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    header_str(response, header::RETRY_AFTER)
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `: <message>` from a registry's `{"errors":[{"code","message"}]}` body, if any.
async fn error_detail(response: reqwest::Response) -> String {
    let Ok(body) = response.bytes().await else {
        return String::new();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body[..body.len().min(64 * 1024)])
    else {
        return String::new();
    };
    let messages: Vec<String> = value
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    (!code.is_empty() || !message.is_empty()).then(|| format!("{code}: {message}"))
                })
                .collect()
        })
        .unwrap_or_default();
    if messages.is_empty() {
        match value.get("details").and_then(|d| d.as_str()) {
            Some(details) => format!(": {details}"),
            None => String::new(),
        }
    } else {
        format!(": {}", messages.join("; "))
    }
}

/// An error and its causes, one line (reqwest's top-level message alone says little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn is_tls_error(cause: &str) -> bool {
    let lower = cause.to_ascii_lowercase();
    [
        "certificate",
        "tls handshake",
        "invalid peer",
        "unknownissuer",
        "unknown issuer",
        "invalidcertificate",
        // An HTTPS request to a plain-HTTP port: the answer is not a TLS record.
        "received corrupt message",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: &str) -> Descriptor {
        Descriptor {
            media_type: crate::oci::OCI_MANIFEST.into(),
            digest: format!("sha256:{platform}"),
            size: 1,
            platform: Some(Platform::parse(platform).unwrap()),
            urls: Vec::new(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn selects_the_platform_or_names_the_offered_ones() {
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                entry("linux/amd64"),
                entry("linux/arm64/v8"),
                entry("linux/arm/v7"),
            ],
        };
        let arm64 = select_platform(&index, &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(arm64.digest, "sha256:linux/arm64/v8");
        let err = select_platform(&index, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(err, "linux/amd64, linux/arm64/v8, linux/arm/v7");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let client = RegistryClient::new(RegistryHosts::default(), ClientOptions::default());
        assert_eq!(client.backoff(0), Duration::from_millis(200));
        assert_eq!(client.backoff(1), Duration::from_millis(400));
        assert_eq!(client.backoff(10), Duration::from_secs(5));
        assert_eq!(client.backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn verifies_whole_blobs() {
        let bytes = b"config";
        let descriptor = Descriptor {
            media_type: "x".into(),
            digest: Digest::sha256_of(bytes).to_string(),
            size: bytes.len() as u64,
            platform: None,
            urls: Vec::new(),
            annotations: Default::default(),
        };
        assert!(verify_blob("r", &descriptor, bytes).is_ok());
        assert!(matches!(
            verify_blob("r", &descriptor, b"CONFIG"),
            Err(RegistryError::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_blob("r", &descriptor, b"conf"),
            Err(RegistryError::SizeMismatch { .. })
        ));
    }
}
