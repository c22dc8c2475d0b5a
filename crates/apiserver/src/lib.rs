//! # nodelet-apiserver
//!
//! The Kubernetes REST API that `kubectl` talks to: discovery, CRUD, list and watch,
//! subresources (status, binding, eviction; log and exec through the node's [`streams::PodStreams`]), patches,
//! authentication and the admission chain (defaulting, validation, NamespaceLifecycle,
//! ServiceAccount, RuntimeClass, AlwaysPullImages, ClusterIP allocation).
//!
//! **May not:** run containers or pull images; it is the only crate that knows HTTP and the
//! JSON wire formats of the API.
//!
//! | module | concept |
//! |---|---|
//! | [`tls`] | the data directory's CA, serving and admin certificates, token, kubeconfig |
//! | [`auth`] | users from client certificates and bearer tokens; 401 otherwise |
//! | [`server`] | the TLS accept loop (HTTP/1.1 and HTTP/2) |
//! | [`routes`] | URL parsing and per-verb handling |
//! | [`discovery`] | `/version`, `/api`, `/apis`, resource lists, aggregated discovery |
//! | [`resources`] | the served types ([`resources::RESOURCES`]) and the generic CRUD layer |
//! | [`selectors`] | label and field selectors on JSON objects |
//! | [`patch`] | merge, JSON and strategic merge patches |
//! | [`watch`] | watch streams, bookmarks, 410 Gone |
//! | [`table`] | server-side Tables for `kubectl get` |
//! | [`admission`] | the admission chain |
//! | [`namespaces`] | namespace creation and deletion side effects |
//! | [`bootstrap`] | the system namespaces, the `kubernetes` Service and Endpoints (kept) |
//! | [`client`] | an in-process client through the same router |
//! | [`errors`] | `Status` errors |
//! | [`streams`] | `pods/log` and `pods/exec`, served by the node through [`streams::PodStreams`] |
//! | [`websocket`] | the WebSocket handshake and framing for exec |
//! | [`spdy`], [`spdy_session`] | SPDY/3.1 framing and the exec session over it (kubectl < 1.30) |

pub mod admission;
pub mod auth;
pub mod bootstrap;
pub mod client;
pub mod discovery;
pub mod errors;
pub mod namespaces;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod routes;
pub mod selectors;
pub mod server;
pub mod spdy;
pub mod spdy_session;
pub mod streams;
pub mod table;
pub mod tls;
pub mod watch;
pub mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nodelet_store::{SqliteStorage, Storage};

pub use auth::User;
pub use client::LocalClient;
pub use errors::ApiError;
pub use resources::generic::Resources;
pub use tls::Pki;

/// How to run the API server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Data directory: the store (`store.db`), the PKI and the kubeconfig.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Extra names for the serving certificate (the node's hostname).
    pub extra_names: Vec<String>,
    /// `--enable-admission-plugins=AlwaysPullImages`.
    pub always_pull_images: bool,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How often the store's history is compacted (watches older than two intervals get
    /// `410 Gone`).
    pub compaction_interval: Duration,
}

impl ServerConfig {
    /// Defaults for `data_dir` and `listen`.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            listen,
            extra_names: Vec::new(),
            always_pull_images: false,
            bookmark_interval: Duration::from_secs(60),
            compaction_interval: Duration::from_secs(300),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store.
    #[error("opening the store: {0}")]
    Store(#[from] nodelet_store::StoreError),
    /// The PKI or the kubeconfig.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Binding the listen address.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Creating the system objects.
    #[error("bootstrap: {0}")]
    Bootstrap(ApiError),
}

/// A started API server: listening, bootstrapped, not yet serving (see [`ApiServer::run`]).
#[derive(Debug)]
pub struct ApiServer {
    state: Arc<routes::ApiState>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    kubeconfig: PathBuf,
    local_addr: SocketAddr,
    /// Where the `kubernetes` Endpoints point.
    advertised: SocketAddr,
    compaction_interval: Duration,
}

/// The server URL clients use for a listen address (a wildcard address means loopback).
pub fn server_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{ip}:{}", addr.port())
}

impl ApiServer {
    /// Opens the store, makes or loads the PKI, binds the address, writes the kubeconfig and
    /// creates the system objects.
    pub async fn start(config: ServerConfig) -> Result<ApiServer, ServeError> {
        tls::ensure_private_dir(&config.data_dir)?;
        let store: Arc<dyn Storage> =
            Arc::new(SqliteStorage::open(config.data_dir.join("store.db"))?);
        Self::start_with_store(config, store).await
    }

    /// As [`start`](Self::start), over a given store.
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn Storage>,
    ) -> Result<ApiServer, ServeError> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            admission::KUBERNETES_SERVICE_IP.to_string(),
        ];
        if !config.listen.ip().is_unspecified() && !config.listen.ip().is_loopback() {
            names.push(config.listen.ip().to_string());
        }
        for name in &config.extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let pki = Pki::ensure(&config.data_dir, &names)?;
        let tls = Arc::new(pki.server_config()?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
        let kubeconfig = config.data_dir.join(tls::KUBECONFIG);
        tls::write_private(
            &kubeconfig,
            pki.kubeconfig(&server_url(local_addr)).as_bytes(),
        )?;
        let admission = admission::Config {
            always_pull_images: config.always_pull_images,
            ..Default::default()
        };
        let res = Resources::new(store, admission);
        let advertised = SocketAddr::new(
            bootstrap::advertise_address(config.listen),
            local_addr.port(),
        );
        bootstrap::run(&res, advertised)
            .await
            .map_err(ServeError::Bootstrap)?;
        let state = Arc::new(routes::ApiState {
            res,
            token: pki.token.clone(),
            server_address: server_url(local_addr)
                .trim_start_matches("https://")
                .to_owned(),
            bookmark_interval: config.bookmark_interval,
            pod_streams: std::sync::OnceLock::new(),
        });
        Ok(ApiServer {
            state,
            listener,
            tls,
            kubeconfig,
            local_addr,
            advertised,
            compaction_interval: config.compaction_interval,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address and port the `kubernetes` Endpoints advertise.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised
    }

    /// The admin kubeconfig written at start.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The resource layer (for in-process components that need it directly).
    pub fn resources(&self) -> &Resources {
        &self.state.res
    }

    /// Registers the node's `pods/log` and `pods/exec` (once; later calls are ignored).
    pub fn set_pod_streams(&self, streams: Arc<dyn streams::PodStreams>) {
        let _ = self.state.pod_streams.set(streams);
    }

    /// An in-process client acting as `user`.
    pub fn client(&self, user: User) -> LocalClient {
        LocalClient::new(routes::router(self.state.clone()), user)
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let store = self.state.res.store().clone();
        let interval = self.compaction_interval;
        let compactor = tokio::spawn(async move {
            nodelet_store::compact_periodically(&*store, interval).await;
        });
        let reconciler = tokio::spawn(bootstrap::reconcile_periodically(
            self.state.res.clone(),
            self.advertised,
            bootstrap::RECONCILE_INTERVAL,
        ));
        server::serve(
            self.listener,
            self.tls,
            routes::router(self.state.clone()),
            shutdown,
        )
        .await;
        compactor.abort();
        reconciler.abort();
    }
}
