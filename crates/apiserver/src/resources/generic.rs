//! The generic resource layer: create, get, list, update, patch and delete of any served type
//! over `Arc<dyn Storage>`, with the semantics every type shares.
//!
//! - Keys are `/registry/<resource>/<namespace>/<name>` (cluster-scoped: no namespace).
//! - Stored values are the object's JSON **without** `metadata.resourceVersion`: the store's
//!   `mod_revision` is the resourceVersion, set on every read, so it can never disagree.
//! - Writes go through [`typed`](super::typed) decoding (unknown fields are dropped as upstream
//!   drops them, and reported per `fieldValidation`) and the admission chain.
//! - Updates are compare-and-swap on the revision the caller read (409 Conflict when stale);
//!   an update that changes nothing is not written (its resourceVersion stays).
//! - Deletion: an object with finalizers, a namespace, or a pod bound to a node with a grace
//!   period > 0 is only marked (`deletionTimestamp`); everything else goes at once. A bound pod
//!   is then removed by its kubelet, which deletes it again with `gracePeriodSeconds=0` once
//!   its containers stopped.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use nodelet_store::{ListOptions, Storage, StoreError};
use serde_json::{Value, json};

use super::{Kind, ResourceType, events, meta, typed};
use crate::admission::{self, Operation};
use crate::errors::{ApiError, ApiResult};
use crate::selectors::Selection;

/// How the server answers unknown or duplicate fields in a body (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them with a `Warning` header (the server default).
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter (empty means the default).
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run everything but the store write.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
}

/// What a write produced.
#[derive(Clone, Debug)]
pub struct Written {
    /// The object as the client sees it (with resourceVersion, apiVersion, kind).
    pub object: Value,
    /// `Warning` headers to send (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// Options of a delete (`DeleteOptions` body and query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Parameters of a list.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// Label and field selectors.
    pub selection: Selection,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// Items, client form, in key order.
    pub items: Vec<Value>,
    /// The list's resourceVersion: the snapshot's revision.
    pub revision: i64,
    /// The continue token when more items follow.
    pub continue_token: Option<String>,
}

/// The generic resource layer (cheap to clone).
#[derive(Clone, Debug)]
pub struct Resources {
    store: Arc<dyn Storage>,
    admission: Arc<admission::Config>,
}

/// A stored object and its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The object in storage form, with `metadata.resourceVersion` set.
    pub object: Value,
    /// Its `mod_revision`.
    pub revision: i64,
}

fn decode_stored(bytes: &[u8], revision: i64) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::internal(format!("decoding a stored object: {err}")))?;
    meta::set_meta(&mut obj, "resourceVersion", revision.to_string());
    Ok(obj)
}

/// The bytes stored for an object: its JSON without the resourceVersion.
fn encode_stored(obj: &Value) -> Bytes {
    let mut obj = obj.clone();
    let m = meta::metadata_mut(&mut obj);
    m.remove("resourceVersion");
    m.remove("selfLink");
    Bytes::from(serde_json::to_vec(&obj).expect("JSON values always serialize"))
}

/// The storage type of a served type (events.k8s.io events are stored as core events).
pub fn storage_type(rt: &'static ResourceType) -> &'static ResourceType {
    if rt.id == Kind::EventV1 {
        super::of(Kind::Event)
    } else {
        rt
    }
}

/// The continue token: the list's revision and the last key returned.
fn encode_continue(revision: i64, last_key: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    match (v["rv"].as_i64(), v["start"].as_str()) {
        (Some(rv), Some(start)) if rv > 0 => Ok((rv, start.to_owned())),
        _ => Err(bad()),
    }
}

/// Parses a resourceVersion a client sent (`""` means none).
pub fn parse_rv(rv: &str) -> ApiResult<Option<i64>> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))
}

impl Resources {
    /// The layer over `store` with `admission` settings.
    pub fn new(store: Arc<dyn Storage>, admission: admission::Config) -> Self {
        Resources {
            store,
            admission: Arc::new(admission),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The admission settings.
    pub fn admission(&self) -> &admission::Config {
        &self.admission
    }

    /// Reads one object in storage form, `None` when missing.
    pub async fn get_stored(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Stored>> {
        let rt = storage_type(rt);
        let got = self
            .store
            .get(&rt.key(ns, name))
            .await
            .map_err(ApiError::from_store)?;
        match got.kv {
            Some(kv) => Ok(Some(Stored {
                object: decode_stored(&kv.value, kv.mod_revision)?,
                revision: kv.mod_revision,
            })),
            None => Ok(None),
        }
    }

    /// Reads one object in client form; 404 when missing.
    pub async fn get(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        match self.get_stored(rt, ns, name).await? {
            Some(s) => Ok(to_client(rt, s.object)),
            None => Err(ApiError::not_found(rt, name)),
        }
    }

    /// Lists objects (`ns` `None`: every namespace), filtered and paged.
    pub async fn list(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        params: &ListParams,
    ) -> ApiResult<ListPage> {
        let srt = storage_type(rt);
        let prefix = srt.prefix(ns);
        let (mut revision, mut start_after) = match &params.continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                (Some(rv), Some(start))
            }
            None => (None, None),
        };
        let mut items = Vec::new();
        // With a name selector and a known namespace, one key answers it.
        if let (Some(name), None) = (params.selection.fields.exact_name(), &start_after)
            && (ns.is_some() || !srt.namespaced)
        {
            let got = self
                .store
                .get(&srt.key(ns, name))
                .await
                .map_err(ApiError::from_store)?;
            if let Some(kv) = got.kv {
                let obj = decode_stored(&kv.value, kv.mod_revision)?;
                if params.selection.matches(&obj) {
                    items.push(to_client(rt, obj));
                }
            }
            return Ok(ListPage {
                items,
                revision: got.revision,
                continue_token: None,
            });
        }
        let want = params.limit;
        loop {
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        start_after: start_after.clone(),
                        limit: (want > 0).then(|| want.max(16)),
                        revision,
                    },
                )
                .await
                .map_err(|err| match err {
                    StoreError::Compacted { .. } => ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    other => ApiError::from_store(other),
                })?;
            revision = Some(page.revision);
            let mut last_key = None;
            let count = page.items.len();
            for (i, kv) in page.items.into_iter().enumerate() {
                let obj = decode_stored(&kv.value, kv.mod_revision)?;
                if params.selection.matches(&obj) {
                    items.push(to_client(rt, obj));
                }
                if want > 0 && items.len() == want {
                    // Full: a continue token only when keys remain after this one.
                    let more = page.more || i + 1 < count;
                    return Ok(ListPage {
                        items,
                        revision: page.revision,
                        continue_token: more.then(|| encode_continue(page.revision, &kv.key)),
                    });
                }
                last_key = Some(kv.key);
            }
            if !page.more {
                return Ok(ListPage {
                    items,
                    revision: page.revision,
                    continue_token: None,
                });
            }
            start_after = last_key;
        }
    }

    /// Creates an object from a client body. `ns` is the namespace of the URL.
    pub async fn create(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let srt = storage_type(rt);
        let (mut obj, warnings) = self.decode_body(rt, body, opts.field_validation)?;
        if rt.namespaced {
            let ns = ns.ok_or_else(ApiError::method_not_allowed)?;
            match meta::namespace(&obj) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta::set_meta(&mut obj, "namespace", ns),
            }
        } else {
            meta::metadata_mut(&mut obj).remove("namespace");
        }
        let generate = meta::meta_str(&obj, "generateName")
            .unwrap_or("")
            .to_owned();
        if meta::name(&obj).is_empty() && generate.is_empty() {
            return Err(ApiError::invalid(
                rt,
                "",
                vec![cause(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        // System fields are the server's.
        {
            let m = meta::metadata_mut(&mut obj);
            for field in [
                "uid",
                "resourceVersion",
                "selfLink",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
            ] {
                m.remove(field);
            }
            m.insert(
                "creationTimestamp".into(),
                Value::String(meta::now_rfc3339()),
            );
            m.insert("uid".into(), Value::String(meta::new_uid()));
        }
        if has_generation(srt) {
            meta::metadata_mut(&mut obj).insert("generation".into(), json!(1));
        }
        for attempt in 0..8 {
            let mut candidate = obj.clone();
            if meta::name(&candidate).is_empty() {
                let name = format!("{}{}", truncate_prefix(&generate), meta::random_suffix());
                meta::set_meta(&mut candidate, "name", name);
            }
            admission::admit(self, Operation::Create, srt, &mut candidate, None).await?;
            if rt.id == Kind::EventV1 {
                admission::validate_v1_event_create(rt, &candidate)?;
            }
            let name = meta::name(&candidate).to_owned();
            let key = srt.key(meta::namespace(&candidate), &name);
            if opts.dry_run {
                return Ok(Written {
                    object: to_client(rt, candidate),
                    warnings,
                });
            }
            match self.store.create(&key, encode_stored(&candidate)).await {
                Ok(revision) => {
                    meta::set_meta(&mut candidate, "resourceVersion", revision.to_string());
                    return Ok(Written {
                        object: to_client(rt, candidate),
                        warnings,
                    });
                }
                Err(StoreError::AlreadyExists { .. })
                    if meta::name(&obj).is_empty() && attempt < 7 =>
                {
                    continue;
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(ApiError::already_exists(rt, &name));
                }
                Err(other) => return Err(ApiError::from_store(other)),
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Replaces an object (PUT), or its status with `subresource` `Some("status")`.
    pub async fn update(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let (obj, warnings) = self.decode_body(rt, body, opts.field_validation)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let precondition = parse_rv(meta::meta_str(&obj, "resourceVersion").unwrap_or(""))?;
        let object = self
            .replace(rt, ns, name, obj, precondition, subresource, opts.dry_run)
            .await?;
        Ok(Written { object, warnings })
    }

    /// Applies a patch to the current object and stores the result; retried on a conflict
    /// unless the patch itself names a resourceVersion.
    pub async fn patch(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        patch: &crate::patch::Patch,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        for _ in 0..5 {
            let current = self
                .get_stored(rt, ns, name)
                .await?
                .ok_or_else(|| ApiError::not_found(rt, name))?;
            let client = to_client(rt, current.object);
            let patched = patch.apply(rt, &client)?;
            let (obj, warnings) = self.decode_body(rt, patched, opts.field_validation)?;
            let asked = parse_rv(meta::meta_str(&obj, "resourceVersion").unwrap_or(""))?;
            let pinned = patch.names_resource_version();
            let precondition = if pinned {
                asked
            } else {
                Some(current.revision)
            };
            if meta::name(&obj) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&obj)
                )));
            }
            match self
                .replace(rt, ns, name, obj, precondition, subresource, opts.dry_run)
                .await
            {
                Err(err) if err.reason() == "Conflict" && !pinned => continue,
                Ok(object) => return Ok(Written { object, warnings }),
                Err(err) => return Err(err),
            }
        }
        Err(ApiError::stale(rt, name))
    }

    /// The shared part of update and patch: carry over what clients may not change, admit,
    /// compare-and-swap.
    #[allow(clippy::too_many_arguments)]
    async fn replace(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        precondition: Option<i64>,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let srt = storage_type(rt);
        let current = self
            .get_stored(rt, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(rv) = precondition
            && rv != current.revision
        {
            return Err(ApiError::stale(rt, name));
        }
        let old = current.object;
        if let Some(uid) = meta::meta_str(&obj, "uid")
            && !uid.is_empty()
            && Some(uid) != meta::meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if subresource == Some("status") {
            // A status write changes the status and nothing else.
            let status = obj.get("status").cloned();
            obj = old.clone();
            match status {
                Some(s) => obj["status"] = s,
                None => {
                    obj.as_object_mut().map(|m| m.remove("status"));
                }
            }
        } else if srt.has_status() {
            // A write of the main resource keeps the stored status.
            match old.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    obj.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        // Metadata only the server writes.
        {
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let m = meta::metadata_mut(&mut obj);
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_meta.get(field) {
                    Some(v) => m.insert(field.to_owned(), v.clone()),
                    None => m.remove(field),
                };
            }
            // Validation compares it with the stored one; it is not stored itself.
            m.insert(
                "resourceVersion".into(),
                Value::String(current.revision.to_string()),
            );
            m.remove("selfLink");
        }
        if has_generation(srt) && spec_changed(&old, &obj) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta::metadata_mut(&mut obj).insert("generation".into(), json!(generation));
        }
        admission::admit(self, Operation::Update, srt, &mut obj, Some(&old)).await?;
        if old == obj {
            return Ok(to_client(rt, old));
        }
        if dry_run {
            meta::set_meta(&mut obj, "resourceVersion", current.revision.to_string());
            return Ok(to_client(rt, obj));
        }
        let key = srt.key(ns, name);
        // The last finalizer removed from an object being deleted: now it goes.
        let finalizers_empty = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        let deleting = obj["metadata"]["deletionTimestamp"].is_string();
        let graceful_pod = srt.id == Kind::Pod
            && obj["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                > 0;
        if deleting && finalizers_empty && !graceful_pod && srt.id != Kind::Namespace {
            let deleted = self
                .store
                .delete(&key, Some(current.revision))
                .await
                .map_err(|err| self.write_error(rt, name, err))?;
            meta::set_meta(&mut obj, "resourceVersion", deleted.revision.to_string());
            return Ok(to_client(rt, obj));
        }
        let revision = self
            .store
            .update(&key, encode_stored(&obj), Some(current.revision))
            .await
            .map_err(|err| self.write_error(rt, name, err))?;
        meta::set_meta(&mut obj, "resourceVersion", revision.to_string());
        Ok(to_client(rt, obj))
    }

    fn write_error(&self, rt: &'static ResourceType, name: &str, err: StoreError) -> ApiError {
        match err {
            StoreError::Conflict { .. } => ApiError::stale(rt, name),
            StoreError::NotFound { .. } => ApiError::not_found(rt, name),
            other => ApiError::from_store(other),
        }
    }

    /// Deletes an object (or marks it, see the module docs). Returns the object as it was last
    /// (or is now, when only marked).
    pub async fn delete(
        &self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let srt = storage_type(rt);
        for _ in 0..5 {
            let current = self
                .get_stored(rt, ns, name)
                .await?
                .ok_or_else(|| ApiError::not_found(rt, name))?;
            let mut obj = current.object;
            let uid = meta::meta_str(&obj, "uid").unwrap_or("").to_owned();
            if let Some(want) = &opts.uid
                && *want != uid
            {
                return Err(ApiError::conflict(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                    ),
                ));
            }
            if let Some(want) = &opts.resource_version
                && *want != current.revision.to_string()
            {
                return Err(ApiError::conflict(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                        current.revision
                    ),
                ));
            }
            let key = srt.key(ns, name);
            let mark = match srt.id {
                Kind::Namespace => Some(0),
                Kind::Pod => pod_grace(&obj, opts.grace_period_seconds),
                _ => None,
            }
            .or_else(|| {
                obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
                    .then_some(0)
            });
            if let Some(grace) = mark {
                let m = meta::metadata_mut(&mut obj);
                let already = m.get("deletionTimestamp").is_some();
                let old_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
                if already && old_grace.is_some_and(|g| g <= grace) {
                    // Already marked with a period no longer than this one.
                    return Ok(to_client(rt, obj));
                }
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                m.insert("deletionTimestamp".into(), json!(meta::format_time(at)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                m.remove("resourceVersion");
                if srt.id == Kind::Namespace {
                    obj["status"]["phase"] = json!("Terminating");
                }
                if opts.dry_run {
                    return Ok(to_client(rt, obj));
                }
                match self
                    .store
                    .update(&key, encode_stored(&obj), Some(current.revision))
                    .await
                {
                    Ok(revision) => {
                        meta::set_meta(&mut obj, "resourceVersion", revision.to_string());
                        return Ok(to_client(rt, obj));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(other) => return Err(self.write_error(rt, name, other)),
                }
            }
            if opts.dry_run {
                return Ok(to_client(rt, obj));
            }
            match self.store.delete(&key, Some(current.revision)).await {
                Ok(_) => return Ok(to_client(rt, obj)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(self.write_error(rt, name, other)),
            }
        }
        Err(ApiError::stale(rt, name))
    }

    /// `pods/binding`: assigns a pod to a node (what the scheduler does). The pod must not be
    /// assigned yet; its `PodScheduled` condition becomes True.
    pub async fn bind(&self, ns: &str, name: &str, node: &str) -> ApiResult<Value> {
        let pods = super::of(Kind::Pod);
        let binding_conflict = |why: String| {
            ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on pods/binding {}: {why}",
                    crate::errors::quote(name)
                ),
            )
        };
        if node.is_empty() {
            return Err(ApiError::invalid(
                pods,
                name,
                vec![cause("FieldValueRequired", "target.name", "Required value")],
            ));
        }
        for _ in 0..5 {
            let current = self
                .get_stored(pods, Some(ns), name)
                .await?
                .ok_or_else(|| ApiError::not_found(pods, name))?;
            let mut pod = current.object;
            if pod["metadata"]["deletionTimestamp"].is_string() {
                return Err(binding_conflict(format!(
                    "pod {name} is being deleted, cannot be assigned to a host"
                )));
            }
            if let Some(assigned) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(binding_conflict(format!(
                    "pod {name} is already assigned to node {}",
                    crate::errors::quote(assigned)
                )));
            }
            pod["spec"]["nodeName"] = json!(node);
            let now = meta::now_rfc3339();
            let conditions = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            pod["status"]["conditions"] = Value::Array(conditions);
            match self
                .store
                .update(
                    &pods.key(Some(ns), name),
                    encode_stored(&pod),
                    Some(current.revision),
                )
                .await
            {
                Ok(revision) => {
                    meta::set_meta(&mut pod, "resourceVersion", revision.to_string());
                    return Ok(to_client(pods, pod));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(self.write_error(pods, name, other)),
            }
        }
        Err(ApiError::stale(pods, name))
    }

    /// Decodes a client body into storage form: type metadata checked, events.k8s.io
    /// converted, unknown fields dropped (and reported per `validation`).
    fn decode_body(
        &self,
        rt: &'static ResourceType,
        body: Value,
        validation: FieldValidation,
    ) -> ApiResult<(Value, Vec<String>)> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the body is not a JSON object",
                rt.kind, rt.version, rt.kind
            )));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && !av.is_empty()
            && av != rt.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        let (decoded, unknown) = typed::decode(rt, &body).map_err(|why| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {why}",
                rt.kind, rt.version, rt.kind
            ))
        })?;
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match validation {
                FieldValidation::Strict => {
                    let list = unknown
                        .iter()
                        .map(|f| format!("unknown field {}", crate::errors::quote(f)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {list}",
                        rt.kind, rt.version, rt.kind
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(
                        unknown
                            .iter()
                            .map(|f| format!("unknown field {}", crate::errors::quote(f))),
                    );
                }
                FieldValidation::Ignore => {}
            }
        }
        let obj = if rt.id == Kind::EventV1 {
            events::to_core(decoded)
        } else {
            decoded
        };
        Ok((obj, warnings))
    }
}

/// A `StatusCause`.
pub fn cause(
    reason: &str,
    field: &str,
    message: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
        reason: Some(reason.to_owned()),
        field: (!field.is_empty()).then(|| field.to_owned()),
        message: Some(message.to_owned()),
    }
}

/// The client form of a stored object: type metadata set, events converted.
pub fn to_client(rt: &'static ResourceType, obj: Value) -> Value {
    let mut obj = if rt.id == Kind::EventV1 {
        events::from_core(obj)
    } else {
        obj
    };
    meta::set_type_meta(&mut obj, &rt.api_version(), rt.kind);
    obj
}

/// Kinds whose `metadata.generation` counts spec changes: none of the served ones in 1.33
/// (pods start tracking it with PodObservedGenerationTracking, beta in 1.34).
fn has_generation(rt: &ResourceType) -> bool {
    let _ = rt;
    false
}

fn spec_changed(old: &Value, new: &Value) -> bool {
    old.get("spec") != new.get("spec")
}

/// generateName is cut so that the name with its suffix stays within 63 characters.
fn truncate_prefix(prefix: &str) -> &str {
    const MAX: usize = 63 - 5;
    if prefix.len() <= MAX {
        prefix
    } else {
        let mut end = MAX;
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        &prefix[..end]
    }
}

/// The grace period a pod deletion waits, or `None` to delete at once: only a pod on a node
/// that is not finished gets one (nobody else would have to stop containers).
fn pod_grace(pod: &Value, asked: Option<i64>) -> Option<i64> {
    let on_node = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if !on_node || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let grace = asked
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    // A negative period means "the minimum" upstream: one second.
    let grace = if grace < 0 { 1 } else { grace };
    (grace > 0).then_some(grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "/registry/pods/default/web");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "/registry/pods/default/web".to_owned())
        );
        assert!(decode_continue("%%%").is_err());
    }

    #[test]
    fn pod_grace_periods() {
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}});
        assert_eq!(pod_grace(&bound, None), Some(30));
        assert_eq!(pod_grace(&bound, Some(0)), None);
        assert_eq!(pod_grace(&bound, Some(5)), Some(5));
        assert_eq!(pod_grace(&json!({"spec": {}}), Some(30)), None);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod_grace(&done, None), None);
    }

    #[test]
    fn generate_name_prefix_is_bounded() {
        assert_eq!(truncate_prefix("web-"), "web-");
        assert_eq!(truncate_prefix(&"a".repeat(80)).len(), 58);
    }
}
