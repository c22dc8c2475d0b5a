//! HTTP routing: authentication, then the Kubernetes URL space parsed by hand (it is regular
//! but deep: `/api/v1/namespaces/{ns}/pods/{name}/status`), then the generic resource layer.
//! Every error leaves as a `Status`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::{self, Peer};
use crate::discovery::{self, Aggregated};
use crate::errors::{ApiError, ApiResult};
use crate::namespaces;
use crate::patch::Patch;
use crate::resources::generic::{
    DeleteOptions, FieldValidation, ListParams, Resources, WriteOptions, Written,
};
use crate::resources::{Kind, ResourceType, by_plural};
use crate::selectors::{FieldSelector, Selection, parse_labels};
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchParams};

/// Everything a request handler needs.
#[derive(Debug)]
pub struct ApiState {
    /// The resource layer.
    pub res: Resources,
    /// The admin bearer token.
    pub token: String,
    /// `host:port` clients reach us at (for `/api`).
    pub server_address: String,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The node's `pods/log` and `pods/exec` (503 until one is registered).
    pub pod_streams: std::sync::OnceLock<Arc<dyn crate::streams::PodStreams>>,
}

/// The largest request body accepted (upstream's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The minimal OpenAPI v2 document (protobuf `openapi_v2.Document`: swagger "2.0", info
/// title "Kubernetes", empty paths). kubectl's client-side validation skips every kind it
/// has no schema for, so this turns it off honestly instead of failing `create -f` with a
/// 404; the server validates (and `fieldValidation=Strict` rejects unknown fields).
const OPENAPI_V2: &[u8] = &[
    0x0a, 0x03, b'2', b'.', b'0', 0x12, 0x15, 0x0a, 0x0a, b'K', b'u', b'b', b'e', b'r', b'n', b'e',
    b't', b'e', b's', 0x12, 0x07, b'v', b'1', b'.', b'3', b'3', b'.', b'0', 0x42, 0x00,
];

/// The router: one fallback handler, because the URL space is parsed by hand.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let user = auth::authenticate(req.extensions().get::<Peer>(), req.headers(), &state.token);
    if user.is_none() {
        return ApiError::unauthorized().into_response();
    }
    match dispatch(&state, req).await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

/// Query parameters.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v}"))),
        }
    }
}

fn json_response(code: StatusCode, body: &Value, content_type: &str) -> Response {
    let mut resp = (code, serde_json::to_vec(body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    resp
}

fn ok_json(body: &Value) -> Response {
    json_response(StatusCode::OK, body, "application/json")
}

const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Adds `Warning` headers (RFC 7234 form, as upstream sends them).
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", crate::errors::quote(w));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

async fn dispatch(state: &ApiState, req: Request) -> ApiResult<Response> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let headers = req.headers().clone();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = || -> ApiResult<()> {
        if method == Method::GET || method == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => {
            get_only()?;
            Ok(ok_json(&discovery::version()))
        }
        ["healthz" | "livez" | "readyz", ..] => {
            get_only()?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "ok",
            )
                .into_response())
        }
        ["openapi", "v2"] => {
            get_only()?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                OPENAPI_V2,
            )
                .into_response())
        }
        ["api"] => {
            get_only()?;
            Ok(match Aggregated::from_accept(&accept) {
                Some(form) => json_response(
                    StatusCode::OK,
                    &discovery::aggregated(true, form),
                    &form.content_type(),
                ),
                None => ok_json(&discovery::core_versions(&state.server_address)),
            })
        }
        ["apis"] => {
            get_only()?;
            Ok(match Aggregated::from_accept(&accept) {
                Some(form) => json_response(
                    StatusCode::OK,
                    &discovery::aggregated(false, form),
                    &form.content_type(),
                ),
                None => ok_json(&discovery::groups()),
            })
        }
        ["apis", group] => {
            get_only()?;
            discovery::group(group)
                .map(|g| ok_json(&g))
                .ok_or_else(ApiError::no_route)
        }
        ["api", version, rest @ ..] => {
            resource_request(state, req, "", version, rest, &query, &accept).await
        }
        ["apis", group, version, rest @ ..] => {
            resource_request(state, req, group, version, rest, &query, &accept).await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// Where a resource URL points.
#[derive(Debug)]
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            (Some((*ns).to_owned()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    let rt = by_plural(group, plural)
        .filter(|rt| rt.version == version)
        .ok_or_else(ApiError::no_route)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = sub
        && !rt.subresources.iter().any(|s| s.name == sub)
    {
        return Err(ApiError::no_route());
    }
    Ok(Target {
        rt,
        namespace,
        name: name.map(str::to_owned),
        sub: sub.map(str::to_owned),
    })
}

async fn read_body(req: Request) -> ApiResult<(HeaderMap, bytes::Bytes)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|err| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("reading the request body: {err}"),
        )
    })?;
    Ok((parts.headers, bytes))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A JSON body; a missing Content-Type means JSON (`kubectl create secret` sends none).
fn json_body(headers: &HeaderMap, body: &[u8], rt: &ResourceType) -> ApiResult<Value> {
    let ct = content_type(headers);
    if crate::protobuf::is_protobuf(&ct) {
        return crate::protobuf::decode(body);
    }
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !(media.is_empty() || media == "application/json" || media == "*/*") {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {err}",
            rt.kind, rt.version, rt.kind
        ))
    })
}

fn write_options(query: &Query) -> ApiResult<WriteOptions> {
    Ok(WriteOptions {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        field_validation: FieldValidation::parse(query.get("fieldValidation").unwrap_or(""))?,
    })
}

fn selection(query: &Query, rt: &ResourceType) -> ApiResult<Selection> {
    Ok(Selection {
        labels: parse_labels(query.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), rt)?,
    })
}

fn object_response(
    code: StatusCode,
    rt: &ResourceType,
    obj: &Value,
    accept: &str,
    query: &Query,
) -> Response {
    if table::wants_table(accept) {
        let include = IncludeObject::parse(query.get("includeObject").unwrap_or(""));
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
        json_response(
            code,
            &table::table(rt, std::slice::from_ref(obj), rv, None, include),
            TABLE_CONTENT_TYPE,
        )
    } else {
        json_response(code, obj, "application/json")
    }
}

fn written_response(
    code: StatusCode,
    rt: &ResourceType,
    w: Written,
    accept: &str,
    query: &Query,
) -> Response {
    with_warnings(
        object_response(code, rt, &w.object, accept, query),
        &w.warnings,
    )
}

fn success_status(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

async fn resource_request(
    state: &ApiState,
    req: Request,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    accept: &str,
) -> ApiResult<Response> {
    if rest.is_empty() {
        if req.method() != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        return discovery::resource_list(group, version)
            .map(|l| ok_json(&l))
            .ok_or_else(ApiError::no_route);
    }
    let target = parse_target(group, version, rest)?;
    let rt = target.rt;
    let ns = target.namespace.as_deref();
    let res = &state.res;
    let method = req.method().clone();
    match (&method, target.name.as_deref(), target.sub.as_deref()) {
        (&Method::GET, None, None) => {
            let sel = selection(query, rt)?;
            if query.flag("watch") {
                let params = WatchParams {
                    resource_version: query.get("resourceVersion").unwrap_or("").to_owned(),
                    selection: sel,
                    bookmarks: query.flag("allowWatchBookmarks"),
                    send_initial_events: query.get("sendInitialEvents").map(|v| v == "true"),
                    timeout: query
                        .int("timeoutSeconds")?
                        .filter(|t| *t > 0)
                        .map(|t| Duration::from_secs(t as u64)),
                    table: table::wants_table(accept)
                        .then(|| IncludeObject::parse(query.get("includeObject").unwrap_or(""))),
                };
                let lines = watch::start(
                    res,
                    rt,
                    target.namespace.clone(),
                    params,
                    state.bookmark_interval,
                )
                .await?;
                let stream = futures_util::stream::unfold(lines, |mut rx| async move {
                    rx.recv()
                        .await
                        .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
                });
                let ct = if table::wants_table(accept) {
                    TABLE_CONTENT_TYPE
                } else {
                    "application/json"
                };
                let mut resp = Response::new(Body::from_stream(stream));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
                return Ok(resp);
            }
            let params = ListParams {
                selection: sel,
                limit: query.int("limit")?.unwrap_or(0).max(0) as usize,
                continue_token: query
                    .get("continue")
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            };
            let page = res.list(rt, ns, &params).await?;
            if table::wants_table(accept) {
                let include = IncludeObject::parse(query.get("includeObject").unwrap_or(""));
                let t = table::table(
                    rt,
                    &page.items,
                    Some(page.revision.to_string()),
                    page.continue_token,
                    include,
                );
                return Ok(json_response(StatusCode::OK, &t, TABLE_CONTENT_TYPE));
            }
            let mut metadata = json!({"resourceVersion": page.revision.to_string()});
            if let Some(c) = page.continue_token {
                metadata["continue"] = json!(c);
            }
            Ok(ok_json(&json!({
                "kind": rt.list_kind(),
                "apiVersion": rt.api_version(),
                "metadata": metadata,
                "items": page.items,
            })))
        }
        (&Method::POST, None, None) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = write_options(query)?;
            let (headers, body) = read_body(req).await?;
            let body = json_body(&headers, &body, rt)?;
            let written = res.create(rt, ns, body, &opts).await?;
            if rt.id == Kind::Namespace && !opts.dry_run {
                namespaces::created(res, crate::resources::meta::name(&written.object)).await?;
            }
            Ok(written_response(
                StatusCode::CREATED,
                rt,
                written,
                accept,
                query,
            ))
        }
        (&Method::DELETE, None, None) => {
            if rt.id == Kind::Namespace {
                return Err(ApiError::method_not_allowed());
            }
            let sel = selection(query, rt)?;
            let (headers, body) = read_body(req).await?;
            let opts = delete_options(query, &delete_options_body(&headers, &body)?)?;
            let page = res
                .list(
                    rt,
                    ns,
                    &ListParams {
                        selection: sel,
                        ..Default::default()
                    },
                )
                .await?;
            let mut deleted = Vec::new();
            for item in page.items {
                let name = crate::resources::meta::name(&item).to_owned();
                let item_ns = crate::resources::meta::namespace(&item).map(str::to_owned);
                match res.delete(rt, item_ns.as_deref(), &name, &opts).await {
                    Ok(obj) => deleted.push(obj),
                    Err(err) if err.reason() == "NotFound" => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(ok_json(&json!({
                "kind": rt.list_kind(),
                "apiVersion": rt.api_version(),
                "metadata": {},
                "items": deleted,
            })))
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            let obj = res.get(rt, ns, name).await?;
            Ok(object_response(StatusCode::OK, rt, &obj, accept, query))
        }
        (&Method::PUT, Some(name), None | Some("status")) => {
            let opts = write_options(query)?;
            let (headers, body) = read_body(req).await?;
            let body = json_body(&headers, &body, rt)?;
            let written = res
                .update(rt, ns, name, body, target.sub.as_deref(), &opts)
                .await?;
            Ok(written_response(StatusCode::OK, rt, written, accept, query))
        }
        (&Method::PATCH, Some(name), None | Some("status")) => {
            let opts = write_options(query)?;
            let (headers, body) = read_body(req).await?;
            let patch = Patch::decode(&content_type(&headers), &body)?;
            let written = res
                .patch(rt, ns, name, &patch, target.sub.as_deref(), &opts)
                .await?;
            Ok(written_response(StatusCode::OK, rt, written, accept, query))
        }
        (&Method::DELETE, Some(name), None) => {
            let (headers, body) = read_body(req).await?;
            let opts = delete_options(query, &delete_options_body(&headers, &body)?)?;
            if rt.id == Kind::Namespace {
                namespaces::check_deletable(rt, name)?;
            }
            let obj = res.delete(rt, ns, name, &opts).await?;
            if rt.id == Kind::Namespace && !opts.dry_run {
                namespaces::spawn_finalizer(res.clone(), name.to_owned());
            }
            Ok(ok_json(&obj))
        }
        (&Method::POST, Some(name), Some("binding")) => {
            let (headers, body) = read_body(req).await?;
            let binding = json_body(&headers, &body, rt)?;
            let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
            res.bind(ns.unwrap_or(""), name, &node).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &success_status(201),
                "application/json",
            ))
        }
        (&Method::POST, Some(name), Some("eviction")) => {
            let (headers, body) = read_body(req).await?;
            let eviction = if crate::protobuf::is_protobuf(&content_type(&headers)) {
                crate::protobuf::decode(&body)?
            } else {
                serde_json::from_slice(&body)
                    .map_err(|err| ApiError::bad_request(format!("decoding the eviction: {err}")))?
            };
            if eviction["metadata"]["name"]
                .as_str()
                .is_some_and(|named| !named.is_empty() && named != name)
            {
                return Err(ApiError::bad_request(
                    "name in URL does not match name in Eviction object",
                ));
            }
            let mut opts = delete_options(&Query::default(), &eviction["deleteOptions"])?;
            if !opts.dry_run {
                mark_disruption_target(res, rt, ns, name, &mut opts).await?;
            }
            res.delete(rt, ns, name, &opts).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &success_status(201),
                "application/json",
            ))
        }
        (&Method::GET, Some(name), Some("log")) => {
            let pod = res.get(rt, ns, name).await?;
            crate::streams::logs(state.pod_streams.get().cloned(), pod, &query.0).await
        }
        (&Method::GET | &Method::POST, Some(name), Some("exec")) => {
            let pod = res.get(rt, ns, name).await?;
            crate::streams::exec(state.pod_streams.get().cloned(), pod, &query.0, req).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Upstream's eviction first records why the pod goes: a `DisruptionTarget` condition (which
/// the kubelet keeps while it stops the pod). A resourceVersion precondition that still holds
/// moves to the updated pod; a stale one is left for the delete to refuse.
async fn mark_disruption_target(
    res: &Resources,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    opts: &mut DeleteOptions,
) -> ApiResult<()> {
    let pod = res.get(rt, ns, name).await?;
    let current = pod["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !pod["metadata"]["deletionTimestamp"].is_null()
        || opts
            .resource_version
            .as_deref()
            .is_some_and(|want| want != current)
    {
        return Ok(());
    }
    let condition = Patch::Strategic(json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": crate::resources::meta::now_rfc3339(),
    }]}}));
    let written = res
        .patch(
            rt,
            ns,
            name,
            &condition,
            Some("status"),
            &WriteOptions::default(),
        )
        .await?;
    if opts.resource_version.is_some() {
        opts.resource_version = written.object["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
    }
    Ok(())
}

/// A DELETE's body as JSON: none (`null`), JSON, or protobuf (typed clients such as
/// `kubectl drain` send their DeleteOptions that way).
fn delete_options_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else if crate::protobuf::is_protobuf(&content_type(headers)) {
        crate::protobuf::decode(body)
    } else {
        serde_json::from_slice(body)
            .map_err(|err| ApiError::bad_request(format!("decoding DeleteOptions: {err}")))
    }
}

/// DeleteOptions from the body (`null` when there was none) and the query.
fn delete_options(query: &Query, body: &Value) -> ApiResult<DeleteOptions> {
    let dry_run_body = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        grace_period_seconds: query
            .int("gracePeriodSeconds")?
            .or_else(|| body["gracePeriodSeconds"].as_i64()),
        uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
        dry_run: dry_run_body || query.get("dryRun").is_some_and(|v| v == "All"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target(
            "",
            "v1",
            &["namespaces", "default", "pods", "web", "status"],
        )
        .unwrap();
        assert_eq!(t.rt.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("status"));
        let t = parse_target("", "v1", &["namespaces", "default"]).unwrap();
        assert_eq!(t.rt.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("default"));
        let t = parse_target("", "v1", &["namespaces", "kube-system", "status"]).unwrap();
        assert_eq!(t.sub.as_deref(), Some("status"));
        let t = parse_target("", "v1", &["pods"]).unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(parse_target("", "v1", &["pods", "web"]).is_err());
        assert!(parse_target("", "v1", &["namespaces", "x", "nodes"]).is_err());
        assert!(parse_target("node.k8s.io", "v1", &["runtimeclasses", "x"]).is_ok());
        assert!(parse_target("", "v1", &["pods", "x", "bogus"]).is_err());
    }

    #[test]
    fn delete_options_from_body_and_query() {
        let q = Query::parse(Some("gracePeriodSeconds=5"));
        let o = delete_options(&q, &json!({"propagationPolicy": "Background"})).unwrap();
        assert_eq!(o.grace_period_seconds, Some(5));
        let o = delete_options(
            &Query::default(),
            &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "u"}}),
        )
        .unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
        assert_eq!(o.uid.as_deref(), Some("u"));
        assert!(
            delete_options(&Query::default(), &Value::Null)
                .unwrap()
                .grace_period_seconds
                .is_none()
        );
    }
}
