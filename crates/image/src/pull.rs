//! Pulling an image: resolve the reference (through an index for the platform), then fetch
//! every layer in parallel and unpack it *while it streams* into its snapshot: the network
//! task hands chunks to a blocking task that writes the blob into the content store, hashes
//! it and feeds the decompressor and tar reader. Nothing becomes visible before the blob's
//! digest and the layer's diff_id check out. Work on one layer is done once even when several
//! pulls (in this or other processes) want it.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::digest::Digest;
use crate::images::{ImageRecord, ImageRecords, LayerRecord, grant_for};
use crate::keyring::{Credential, CredentialSource};
use crate::oci::{Descriptor, ImageConfigFile, Manifest, ManifestKind, Platform};
use crate::pull_queue::{PullConcurrency, PullQueue, PullTimes};
use crate::reference::Reference;
use crate::registry::{RegistryClient, RegistryError, RepositoryRef};
use crate::store::{ContentStore, Ingest, StoreError};
use crate::unpack::{Compression, UnpackError, UnpackLimits, unpack_layer};

/// Layers fetched and unpacked at once per pull. On 2 cores three keep both busy; more only
/// add buffers (measured on `medium`: 6 layers at once, 16 chunks: 37 MB peak RSS; 3 and 4:
/// 23 MB, in about the same time).
const PARALLEL_LAYERS: usize = 3;
/// Chunks buffered between the network and each unpacker. hyper hands out chunks of up to
/// ~400 KiB on loopback, so this bounds the bytes a slow disk lets pile up per layer.
const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pulling {image}: {source}")]
    Registry {
        image: String,
        source: RegistryError,
    },
    #[error("pulling {image}: every credential failed: [{}]", .errors.join(", "))]
    AllCredentialsFailed { image: String, errors: Vec<String> },
    #[error("pulling {image}: layer {digest}: {source}")]
    Unpack {
        image: String,
        digest: String,
        source: Box<UnpackError>,
    },
    #[error(
        "pulling {image}: layer {digest} unpacks to {actual}, but the image config says {expected}"
    )]
    DiffIdMismatch {
        image: String,
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("pulling {image}: {source}")]
    Store { image: String, source: StoreError },
    #[error("pulling {image}: {cause}")]
    Invalid { image: String, cause: String },
}

/// Progress of a pull, for a terminal or log. Called from several threads.
pub trait PullProgress: Send + Sync {
    fn resolved(&self, _image: &str, _digest: &str) {}
    fn layer_started(&self, _digest: &str, _size: u64) {}
    fn layer_progress(&self, _digest: &str, _bytes: u64) {}
    /// `already_present` when nothing had to be fetched.
    fn layer_done(&self, _digest: &str, _already_present: bool) {}
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct NoProgress;
impl PullProgress for NoProgress {}

/// The image service: registry client, content store and image records.
#[derive(Debug)]
pub struct ImageService {
    store: ContentStore,
    client: RegistryClient,
    records: ImageRecords,
    limits: UnpackLimits,
    /// The node's pull queue, used by [`ImageService::pull_queued`] (serial by default).
    queue: PullQueue,
}

impl ImageService {
    pub fn new(store: ContentStore, client: RegistryClient) -> ImageService {
        let records = ImageRecords::new(&store.images_dir());
        ImageService {
            store,
            client,
            records,
            limits: UnpackLimits::default(),
            queue: PullQueue::default(),
        }
    }

    /// Sets how many queued pulls run at once (see [`crate::pull_queue`]).
    pub fn with_pull_concurrency(mut self, concurrency: PullConcurrency) -> ImageService {
        self.queue = PullQueue::new(concurrency);
        self
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    pub fn records(&self) -> &ImageRecords {
        &self.records
    }

    /// Pulls `reference` for `platform`, trying each credential in order (anonymous when
    /// there are none; no anonymous fallback after credentials fail, as the kubelet does).
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        credentials: &[(Credential, CredentialSource)],
        progress: Arc<dyn PullProgress>,
    ) -> Result<ImageRecord, PullError> {
        let image = reference.to_string();
        if credentials.is_empty() {
            return self.pull_with(reference, platform, None, progress).await;
        }
        let mut errors = Vec::new();
        for credential in credentials {
            match self
                .pull_with(reference, platform, Some(credential), progress.clone())
                .await
            {
                Ok(record) => return Ok(record),
                Err(err) if credentials.len() == 1 => return Err(err),
                Err(err) => errors.push(err.to_string()),
            }
        }
        Err(PullError::AllCredentialsFailed { image, errors })
    }

    /// [`ImageService::pull`] through the node's pull queue, with how long it ran and how
    /// long since it was queued (the kubelet's pulls go this way; `nodelet images pull` not).
    pub async fn pull_queued(
        &self,
        reference: &Reference,
        platform: &Platform,
        credentials: &[(Credential, CredentialSource)],
        progress: Arc<dyn PullProgress>,
    ) -> (Result<ImageRecord, PullError>, PullTimes) {
        let pull = self.pull(reference, platform, credentials, progress);
        self.queue.run(&reference.to_string(), pull).await
    }

    async fn pull_with(
        &self,
        reference: &Reference,
        platform: &Platform,
        credential: Option<&(Credential, CredentialSource)>,
        progress: Arc<dyn PullProgress>,
    ) -> Result<ImageRecord, PullError> {
        let image = reference.to_string();
        let registry_error = |source| PullError::Registry {
            image: image.clone(),
            source,
        };
        let store_error = |source| PullError::Store {
            image: image.clone(),
            source,
        };
        let invalid = |cause: String| PullError::Invalid {
            image: image.clone(),
            cause,
        };
        let login = credential.map(|(c, _)| c);
        let repo = RepositoryRef {
            registry: reference.domain().to_string(),
            repository: reference.path().to_string(),
        };

        let (index, manifest) = self
            .client
            .resolve(&repo, reference.pull_target().as_str(), platform, login)
            .await
            .map_err(registry_error)?;
        let top = index.as_ref().unwrap_or(&manifest);
        progress.resolved(&image, &top.digest.to_string());
        for fetched in [index.as_ref(), Some(&manifest)].into_iter().flatten() {
            self.store
                .write_blob(&fetched.digest, &fetched.bytes)
                .map_err(store_error)?;
        }
        let ManifestKind::Image(image_manifest) = &manifest.kind else {
            return Err(invalid(
                "the registry returned an index where an image manifest was expected".into(),
            ));
        };

        let config_digest = parse_digest(&image_manifest.config.digest).map_err(&invalid)?;
        let config_bytes = if self.store.has_blob(&config_digest) {
            self.store.read_blob(&config_digest).map_err(store_error)?
        } else {
            let bytes = self
                .client
                .fetch_blob_bytes(&repo, &image_manifest.config, login)
                .await
                .map_err(registry_error)?;
            self.store
                .write_blob(&config_digest, &bytes)
                .map_err(store_error)?;
            bytes
        };
        let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("invalid image config: {e}")))?;

        let source = LayerSource::Registry {
            repo: &repo,
            credential: login,
        };
        self.ensure_layers(&image, image_manifest, &config, source, progress)
            .await?;
        let record = self.record_image(
            &image,
            (&top.digest, &top.media_type),
            &manifest.digest,
            image_manifest,
            (&config_digest, &config),
            &grant_for(credential),
        );
        self.records.save(&record).map_err(store_error)?;
        Ok(record)
    }

    /// Fetches (or takes from the store) and unpacks every layer of `manifest`, in parallel.
    pub(crate) async fn ensure_layers(
        &self,
        image: &str,
        manifest: &Manifest,
        config: &ImageConfigFile,
        source: LayerSource<'_>,
        progress: Arc<dyn PullProgress>,
    ) -> Result<(), PullError> {
        let invalid = |cause: String| PullError::Invalid {
            image: image.to_string(),
            cause,
        };
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "the manifest has {} layers but the config lists {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut jobs = Vec::new();
        for (descriptor, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let compression =
                Compression::from_media_type(&descriptor.media_type).ok_or_else(|| {
                    invalid(format!(
                        "layer media type {} is not supported",
                        descriptor.media_type
                    ))
                })?;
            jobs.push(LayerJob {
                descriptor: descriptor.clone(),
                digest: parse_digest(&descriptor.digest).map_err(&invalid)?,
                diff_id: parse_digest(diff_id).map_err(&invalid)?,
                compression,
            });
        }
        let mut layers = futures_util::stream::iter(jobs)
            .map(|job| self.ensure_layer(image, source, job, progress.clone()))
            .buffer_unordered(PARALLEL_LAYERS);
        while let Some(result) = layers.next().await {
            result?;
        }
        Ok(())
    }

    /// The record for an image whose content is all in the store; `grant` is added to the
    /// grants of an existing record of the same name.
    pub(crate) fn record_image(
        &self,
        name: &str,
        (top_digest, top_media_type): (&Digest, &str),
        manifest_digest: &Digest,
        manifest: &Manifest,
        (config_digest, config): (&Digest, &ImageConfigFile),
        grant: &str,
    ) -> ImageRecord {
        let mut pulled_with = self
            .records
            .get(name)
            .map(|r| r.pulled_with)
            .unwrap_or_default();
        pulled_with.insert(grant.to_string());
        ImageRecord {
            name: name.to_string(),
            digest: top_digest.to_string(),
            media_type: top_media_type.to_string(),
            manifest_digest: manifest_digest.to_string(),
            config_digest: config_digest.to_string(),
            platform: Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                os_version: None,
            }
            .to_string(),
            layers: manifest
                .layers
                .iter()
                .zip(&config.rootfs.diff_ids)
                .map(|(d, diff_id)| LayerRecord {
                    digest: d.digest.clone(),
                    diff_id: diff_id.clone(),
                    size: d.size,
                    media_type: d.media_type.clone(),
                })
                .collect(),
            size: manifest.layers.iter().map(|d| d.size).sum(),
            config: config.config.clone(),
            pulled_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            pulled_with,
        }
    }

    /// Makes sure the layer's blob and snapshot exist, fetching and unpacking as needed.
    pub(crate) async fn ensure_layer(
        &self,
        image: &str,
        source: LayerSource<'_>,
        job: LayerJob,
        progress: Arc<dyn PullProgress>,
    ) -> Result<(), PullError> {
        let store_error = |source| PullError::Store {
            image: image.to_string(),
            source,
        };
        let digest_text = job.descriptor.digest.clone();
        if self.store.has_blob(&job.digest) && self.store.has_snapshot(&job.diff_id) {
            progress.layer_done(&digest_text, true);
            return Ok(());
        }
        // One fetch and unpack per layer, across pulls and processes.
        let lock_path = self.store.lock_path(&job.digest);
        let _lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::File::create(&lock_path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| {
            store_error(StoreError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })
        })?
        .map_err(|source| {
            store_error(StoreError::Io {
                path: self.store.lock_path(&job.digest),
                source,
            })
        })?;

        let has_blob = self.store.has_blob(&job.digest);
        let has_snapshot = self.store.has_snapshot(&job.diff_id);
        if has_blob && has_snapshot {
            progress.layer_done(&digest_text, true);
            return Ok(());
        }
        progress.layer_started(&digest_text, job.descriptor.size);
        let unpack_into = if has_snapshot {
            None
        } else {
            Some(self.store.begin_snapshot().map_err(store_error)?)
        };
        let result = match source {
            _ if has_blob => {
                self.unpack_stored_blob(image, &job, unpack_into.clone(), progress.clone())
                    .await
            }
            LayerSource::Registry { repo, credential } => {
                self.fetch_and_unpack(
                    image,
                    repo,
                    &job,
                    unpack_into.clone(),
                    credential,
                    progress.clone(),
                )
                .await
            }
            LayerSource::Store => Err(PullError::Invalid {
                image: image.to_string(),
                cause: format!(
                    "layer {} is not in the content store",
                    job.descriptor.digest
                ),
            }),
        };
        match (result, unpack_into) {
            (Ok(()), Some(dir)) => self
                .store
                .commit_snapshot(&dir, &job.diff_id)
                .map_err(store_error)?,
            (Ok(()), None) => {}
            (Err(err), dir) => {
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(err);
            }
        }
        progress.layer_done(&digest_text, false);
        Ok(())
    }

    async fn fetch_and_unpack(
        &self,
        image: &str,
        repo: &RepositoryRef,
        job: &LayerJob,
        unpack_into: Option<PathBuf>,
        credential: Option<&Credential>,
        progress: Arc<dyn PullProgress>,
    ) -> Result<(), PullError> {
        let ingest = self
            .store
            .begin_ingest(&job.digest)
            .map_err(|source| PullError::Store {
                image: image.to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let limits = self.limits.clone();
        let compression = job.compression;
        let digest = job.descriptor.digest.clone();
        let consumer = tokio::task::spawn_blocking(move || {
            let mut reader = TeeReader {
                chunks: rx,
                current: Bytes::new(),
                ingest,
                progress,
                digest,
            };
            let unpacked = unpack_into
                .as_ref()
                .map(|dir| unpack_layer(&mut reader, compression, dir, &limits));
            // The tar end may come before the blob's end (padding, compression trailer); after
            // an unpack error, dropping the channel instead cancels the download.
            let drained = match &unpacked {
                Some(Err(_)) => Ok(()),
                _ => reader.drain(),
            };
            (reader.ingest, unpacked, drained)
        });
        let fetched = self
            .client
            .fetch_blob(repo, &job.descriptor, credential, tx)
            .await;
        let (ingest, unpacked, drained) = consumer.await.map_err(|e| PullError::Invalid {
            image: image.to_string(),
            cause: format!("unpack task failed: {e}"),
        })?;
        let unpacked = unpacked.transpose();
        match (fetched, unpacked) {
            // A failed download ends the unpacker's input early: the download error is the cause.
            (Err(source), _) if !matches!(source, RegistryError::Cancelled) => {
                return Err(PullError::Registry {
                    image: image.to_string(),
                    source,
                });
            }
            // An unpacker that stopped early cancels the download: its error is the cause.
            (_, Err(source)) => {
                return Err(PullError::Unpack {
                    image: image.to_string(),
                    digest: job.descriptor.digest.clone(),
                    source: Box::new(source),
                });
            }
            (Err(source), _) => {
                return Err(PullError::Registry {
                    image: image.to_string(),
                    source,
                });
            }
            (Ok(_), Ok(stats)) => {
                drained.map_err(|source| PullError::Store {
                    image: image.to_string(),
                    source,
                })?;
                ingest
                    .commit(job.descriptor.size)
                    .map_err(|source| PullError::Store {
                        image: image.to_string(),
                        source,
                    })?;
                if let Some(stats) = stats {
                    check_diff_id(image, job, &stats.diff_id)?;
                }
            }
        }
        Ok(())
    }

    async fn unpack_stored_blob(
        &self,
        image: &str,
        job: &LayerJob,
        unpack_into: Option<PathBuf>,
        progress: Arc<dyn PullProgress>,
    ) -> Result<(), PullError> {
        let Some(dir) = unpack_into else {
            return Ok(());
        };
        let path = self.store.blob_path(&job.digest);
        let limits = self.limits.clone();
        let compression = job.compression;
        let file = std::fs::File::open(&path).map_err(|source| PullError::Store {
            image: image.to_string(),
            source: StoreError::Io { path, source },
        })?;
        let result = tokio::task::spawn_blocking(move || {
            unpack_layer(
                std::io::BufReader::with_capacity(1 << 20, file),
                compression,
                &dir,
                &limits,
            )
        })
        .await
        .map_err(|e| PullError::Invalid {
            image: image.to_string(),
            cause: format!("unpack task failed: {e}"),
        })?;
        let stats = result.map_err(|source| PullError::Unpack {
            image: image.to_string(),
            digest: job.descriptor.digest.clone(),
            source: Box::new(source),
        })?;
        progress.layer_progress(&job.descriptor.digest, job.descriptor.size);
        check_diff_id(image, job, &stats.diff_id)
    }
}

/// Where a layer's blob comes from when the store lacks it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LayerSource<'a> {
    Registry {
        repo: &'a RepositoryRef,
        credential: Option<&'a Credential>,
    },
    /// The blob must already be in the content store (an import put it there).
    Store,
}

#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    descriptor: Descriptor,
    digest: Digest,
    diff_id: Digest,
    compression: Compression,
}

fn check_diff_id(image: &str, job: &LayerJob, actual: &str) -> Result<(), PullError> {
    if actual != job.diff_id.to_string() {
        return Err(PullError::DiffIdMismatch {
            image: image.to_string(),
            digest: job.descriptor.digest.clone(),
            expected: job.diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn parse_digest(text: &str) -> Result<Digest, String> {
    Digest::parse(text)
}

/// Reads the chunks the network task sends, writing each into the blob's ingest file (which
/// hashes it) as it arrives, so the blob is stored whole even if the tar ends early.
struct TeeReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
    ingest: Ingest,
    progress: Arc<dyn PullProgress>,
    digest: String,
}

impl TeeReader {
    fn next_chunk(&mut self) -> std::io::Result<bool> {
        match self.chunks.blocking_recv() {
            Some(chunk) => {
                self.ingest.write(&chunk).map_err(std::io::Error::other)?;
                self.progress
                    .layer_progress(&self.digest, chunk.len() as u64);
                self.current = chunk;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Consumes the rest of the stream into the ingest file.
    fn drain(&mut self) -> Result<(), StoreError> {
        self.current = Bytes::new();
        while self.next_chunk().map_err(|e| StoreError::Io {
            path: PathBuf::new(),
            source: e,
        })? {}
        Ok(())
    }
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
