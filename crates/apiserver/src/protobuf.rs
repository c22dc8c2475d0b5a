//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! decoded into the same JSON the rest of the server works on.
//!
//! kubectl ≥ 1.32 sends its generator commands (`create secret`, `create configmap`,
//! `create namespace`, `create serviceaccount`, `create service`, `run`) as protobuf and does
//! not fall back to JSON on a 415, so a server that only reads JSON cannot serve them. This
//! decoder covers the kinds those commands create, field by field (field numbers from the
//! upstream `generated.proto` files), and refuses — with a 415 naming the field — anything it
//! does not know, rather than silently dropping data. Answers stay JSON: kubectl also accepts
//! `application/json`.
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown` message
//! (`typeMeta` = 1 {`apiVersion` = 1, `kind` = 2}, `raw` = 2, `contentEncoding` = 3,
//! `contentType` = 4); `raw` holds the object's own message.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, ApiResult};

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Pointer fields in the Go types: a zero value in them was set on purpose.
const KEEP_ZERO: &[&str] = &[
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "deletionGracePeriodSeconds",
    "priority",
    "tolerationSeconds",
    "immutable",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "allocateLoadBalancerNodePorts",
    "hostNetwork",
    "gracePeriodSeconds",
    "orphanDependents",
];

/// How a field's value is turned into JSON.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    Bytes,
    Bool,
    Int,
    Msg(&'static [F]),
    /// `metav1.Time` {seconds = 1, nanos = 2} → RFC 3339 (or null when zero).
    Time,
    /// `resource.Quantity` {string = 1} → its string.
    Quantity,
    /// `intstr.IntOrString` {type = 1, intVal = 2, strVal = 3} → number or string.
    IntOrString,
    MapStr,
    MapBytes,
    MapQuantity,
}

/// One field: tag, JSON name, type, repeated.
#[derive(Clone, Copy, Debug)]
struct F(u32, &'static str, Ty, bool);

const fn one(tag: u32, name: &'static str, ty: Ty) -> F {
    F(tag, name, ty, false)
}
const fn many(tag: u32, name: &'static str, ty: Ty) -> F {
    F(tag, name, ty, true)
}

static OWNER_REFERENCE: &[F] = &[
    one(1, "kind", Ty::Str),
    one(3, "name", Ty::Str),
    one(4, "uid", Ty::Str),
    one(5, "apiVersion", Ty::Str),
    one(6, "controller", Ty::Bool),
    one(7, "blockOwnerDeletion", Ty::Bool),
];

/// `managedFields` (17) are accepted and dropped: server-side apply is not served.
static OBJECT_META: &[F] = &[
    one(1, "name", Ty::Str),
    one(2, "generateName", Ty::Str),
    one(3, "namespace", Ty::Str),
    one(4, "selfLink", Ty::Str),
    one(5, "uid", Ty::Str),
    one(6, "resourceVersion", Ty::Str),
    one(7, "generation", Ty::Int),
    one(8, "creationTimestamp", Ty::Time),
    one(9, "deletionTimestamp", Ty::Time),
    one(10, "deletionGracePeriodSeconds", Ty::Int),
    one(11, "labels", Ty::MapStr),
    one(12, "annotations", Ty::MapStr),
    many(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    many(14, "finalizers", Ty::Str),
];

static LOCAL_OBJECT_REFERENCE: &[F] = &[one(1, "name", Ty::Str)];

static OBJECT_REFERENCE: &[F] = &[
    one(1, "kind", Ty::Str),
    one(2, "namespace", Ty::Str),
    one(3, "name", Ty::Str),
    one(4, "uid", Ty::Str),
    one(5, "apiVersion", Ty::Str),
    one(6, "resourceVersion", Ty::Str),
    one(7, "fieldPath", Ty::Str),
];

static EMPTY: &[F] = &[];

static TYPE_META: &[F] = &[one(1, "apiVersion", Ty::Str), one(2, "kind", Ty::Str)];

static SECRET: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "data", Ty::MapBytes),
    one(3, "type", Ty::Str),
    one(4, "stringData", Ty::MapStr),
    one(5, "immutable", Ty::Bool),
];

static CONFIG_MAP: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "data", Ty::MapStr),
    one(3, "binaryData", Ty::MapBytes),
    one(4, "immutable", Ty::Bool),
];

static NAMESPACE: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "spec", Ty::Msg(&[many(1, "finalizers", Ty::Str)])),
    one(3, "status", Ty::Msg(&[one(1, "phase", Ty::Str)])),
];

static SERVICE_ACCOUNT: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    many(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    many(3, "imagePullSecrets", Ty::Msg(LOCAL_OBJECT_REFERENCE)),
    one(4, "automountServiceAccountToken", Ty::Bool),
];

static CONTAINER_PORT: &[F] = &[
    one(1, "name", Ty::Str),
    one(2, "hostPort", Ty::Int),
    one(3, "containerPort", Ty::Int),
    one(4, "protocol", Ty::Str),
    one(5, "hostIP", Ty::Str),
];

static ENV_VAR: &[F] = &[one(1, "name", Ty::Str), one(2, "value", Ty::Str)];

static RESOURCES: &[F] = &[
    one(1, "limits", Ty::MapQuantity),
    one(2, "requests", Ty::MapQuantity),
];

static CONTAINER: &[F] = &[
    one(1, "name", Ty::Str),
    one(2, "image", Ty::Str),
    many(3, "command", Ty::Str),
    many(4, "args", Ty::Str),
    one(5, "workingDir", Ty::Str),
    many(6, "ports", Ty::Msg(CONTAINER_PORT)),
    many(7, "env", Ty::Msg(ENV_VAR)),
    one(8, "resources", Ty::Msg(RESOURCES)),
    one(13, "terminationMessagePath", Ty::Str),
    one(14, "imagePullPolicy", Ty::Str),
    one(15, "securityContext", Ty::Msg(EMPTY)),
    one(16, "stdin", Ty::Bool),
    one(17, "stdinOnce", Ty::Bool),
    one(18, "tty", Ty::Bool),
    one(20, "terminationMessagePolicy", Ty::Str),
];

static TOLERATION: &[F] = &[
    one(1, "key", Ty::Str),
    one(2, "operator", Ty::Str),
    one(3, "value", Ty::Str),
    one(4, "effect", Ty::Str),
    one(5, "tolerationSeconds", Ty::Int),
];

static POD_SPEC: &[F] = &[
    many(2, "containers", Ty::Msg(CONTAINER)),
    one(3, "restartPolicy", Ty::Str),
    one(4, "terminationGracePeriodSeconds", Ty::Int),
    one(5, "activeDeadlineSeconds", Ty::Int),
    one(6, "dnsPolicy", Ty::Str),
    one(7, "nodeSelector", Ty::MapStr),
    one(8, "serviceAccountName", Ty::Str),
    one(9, "serviceAccount", Ty::Str),
    one(10, "nodeName", Ty::Str),
    one(11, "hostNetwork", Ty::Bool),
    one(12, "hostPID", Ty::Bool),
    one(13, "hostIPC", Ty::Bool),
    one(14, "securityContext", Ty::Msg(EMPTY)),
    many(15, "imagePullSecrets", Ty::Msg(LOCAL_OBJECT_REFERENCE)),
    one(16, "hostname", Ty::Str),
    one(17, "subdomain", Ty::Str),
    one(19, "schedulerName", Ty::Str),
    many(20, "initContainers", Ty::Msg(CONTAINER)),
    one(21, "automountServiceAccountToken", Ty::Bool),
    many(22, "tolerations", Ty::Msg(TOLERATION)),
    one(24, "priorityClassName", Ty::Str),
    one(25, "priority", Ty::Int),
    one(29, "runtimeClassName", Ty::Str),
    one(30, "enableServiceLinks", Ty::Bool),
    one(31, "preemptionPolicy", Ty::Str),
    one(32, "overhead", Ty::MapQuantity),
];

static POD: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "spec", Ty::Msg(POD_SPEC)),
    one(3, "status", Ty::Msg(EMPTY)),
];

static SERVICE_PORT: &[F] = &[
    one(1, "name", Ty::Str),
    one(2, "protocol", Ty::Str),
    one(3, "port", Ty::Int),
    one(4, "targetPort", Ty::IntOrString),
    one(5, "nodePort", Ty::Int),
    one(6, "appProtocol", Ty::Str),
];

static SERVICE_SPEC: &[F] = &[
    many(1, "ports", Ty::Msg(SERVICE_PORT)),
    one(2, "selector", Ty::MapStr),
    one(3, "clusterIP", Ty::Str),
    one(4, "type", Ty::Str),
    many(5, "externalIPs", Ty::Str),
    one(7, "sessionAffinity", Ty::Str),
    one(8, "loadBalancerIP", Ty::Str),
    many(9, "loadBalancerSourceRanges", Ty::Str),
    one(10, "externalName", Ty::Str),
    one(11, "externalTrafficPolicy", Ty::Str),
    one(12, "healthCheckNodePort", Ty::Int),
    one(13, "publishNotReadyAddresses", Ty::Bool),
    one(17, "ipFamilyPolicy", Ty::Str),
    many(18, "clusterIPs", Ty::Str),
    many(19, "ipFamilies", Ty::Str),
    one(20, "allocateLoadBalancerNodePorts", Ty::Bool),
    one(21, "loadBalancerClass", Ty::Str),
    one(22, "internalTrafficPolicy", Ty::Str),
    one(23, "trafficDistribution", Ty::Str),
];

static SERVICE: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "spec", Ty::Msg(SERVICE_SPEC)),
    one(3, "status", Ty::Msg(EMPTY)),
];

static PRECONDITIONS: &[F] = &[one(1, "uid", Ty::Str), one(2, "resourceVersion", Ty::Str)];

/// meta/v1 DeleteOptions: typed clients (`kubectl drain`) send it as protobuf.
static DELETE_OPTIONS: &[F] = &[
    one(1, "gracePeriodSeconds", Ty::Int),
    one(2, "preconditions", Ty::Msg(PRECONDITIONS)),
    one(3, "orphanDependents", Ty::Bool),
    one(4, "propagationPolicy", Ty::Str),
    many(5, "dryRun", Ty::Str),
    one(
        6,
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        Ty::Bool,
    ),
];

/// policy/v1 Eviction, what `kubectl drain` posts to pods/eviction.
static EVICTION: &[F] = &[
    one(1, "metadata", Ty::Msg(OBJECT_META)),
    one(2, "deleteOptions", Ty::Msg(DELETE_OPTIONS)),
];

fn schema(kind: &str) -> Option<&'static [F]> {
    Some(match kind {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Pod" => POD,
        "Service" => SERVICE,
        "DeleteOptions" => DELETE_OPTIONS,
        "Eviction" => EVICTION,
        _ => return None,
    })
}

fn unsupported(why: String) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "{why}; this server reads {MEDIA_TYPE} only for Secret, ConfigMap, Namespace, ServiceAccount, Pod, Service, DeleteOptions and Eviction: send application/json"
        ),
    )
}

/// One decoded field: (tag, wire type, payload).
enum Raw<'a> {
    Varint(u64),
    Fixed(u64),
    Len(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| ApiError::bad_request("truncated protobuf"))?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ApiError::bad_request("malformed protobuf varint"))
    }

    fn take(&mut self, n: usize) -> ApiResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(ApiError::bad_request("truncated protobuf"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> ApiResult<Option<(u32, Raw<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| ApiError::bad_request("bad protobuf tag"))?;
        let raw = match key & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => Raw::Fixed(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| ApiError::bad_request("bad protobuf length"))?;
                Raw::Len(self.take(n)?)
            }
            5 => Raw::Fixed(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            ))),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported protobuf wire type {other}"
                )));
            }
        };
        Ok(Some((tag, raw)))
    }
}

fn text(bytes: &[u8]) -> ApiResult<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("protobuf string is not UTF-8"))
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A map entry message {key = 1, value = 2}.
fn entry(bytes: &[u8], value_ty: Ty, path: &str) -> ApiResult<(String, Value)> {
    let mut r = Reader { buf: bytes };
    let (mut key, mut value) = (String::new(), Value::Null);
    while let Some((tag, raw)) = r.next()? {
        match (tag, raw) {
            (1, Raw::Len(b)) => key = text(b)?,
            (2, raw) => value = scalar(raw, value_ty, path)?,
            _ => {}
        }
    }
    if value.is_null() {
        value = match value_ty {
            Ty::Bytes => json!(""),
            Ty::Quantity => json!("0"),
            _ => json!(""),
        };
    }
    Ok((key, value))
}

fn scalar(raw: Raw<'_>, ty: Ty, path: &str) -> ApiResult<Value> {
    let wrong = || ApiError::bad_request(format!("protobuf field {path} has the wrong wire type"));
    Ok(match (ty, raw) {
        (Ty::Str, Raw::Len(b)) => Value::String(text(b)?),
        (Ty::Bytes, Raw::Len(b)) => b64(b),
        (Ty::Bool, Raw::Varint(v)) => Value::Bool(v != 0),
        (Ty::Int, Raw::Varint(v)) => json!(v as i64),
        (Ty::Msg(fields), Raw::Len(b)) => message(b, fields, path)?,
        (Ty::Time, Raw::Len(b)) => {
            let m = message(
                b,
                &[one(1, "seconds", Ty::Int), one(2, "nanos", Ty::Int)],
                path,
            )?;
            match m["seconds"].as_i64().filter(|s| *s != 0) {
                Some(s) => match jiff::Timestamp::from_second(s) {
                    Ok(ts) => Value::String(crate::resources::meta::format_time(ts)),
                    Err(_) => Value::Null,
                },
                None => Value::Null,
            }
        }
        (Ty::Quantity, Raw::Len(b)) => {
            let m = message(b, &[one(1, "string", Ty::Str)], path)?;
            m.get("string").cloned().unwrap_or(json!("0"))
        }
        (Ty::IntOrString, Raw::Len(b)) => {
            let m = message(
                b,
                &[
                    one(1, "type", Ty::Int),
                    one(2, "intVal", Ty::Int),
                    one(3, "strVal", Ty::Str),
                ],
                path,
            )?;
            if m["type"].as_i64() == Some(1) {
                m.get("strVal").cloned().unwrap_or(json!(""))
            } else {
                m.get("intVal").cloned().unwrap_or(json!(0))
            }
        }
        _ => return Err(wrong()),
    })
}

/// Decodes one message with `fields` into a JSON object.
fn message(bytes: &[u8], fields: &[F], path: &str) -> ApiResult<Value> {
    let mut out = Map::new();
    let mut r = Reader { buf: bytes };
    while let Some((tag, raw)) = r.next()? {
        let Some(&F(_, name, ty, repeated)) = fields.iter().find(|f| f.0 == tag) else {
            // Go's protobuf encoder writes every non-pointer field, empty or not: an unknown
            // field holding its zero value carries nothing and is skipped.
            let zero = match raw {
                Raw::Varint(v) | Raw::Fixed(v) => v == 0,
                Raw::Len(b) => b.is_empty(),
            };
            if zero || (path == "metadata" && tag == 17) {
                continue; // or managedFields
            }
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" of {path}")
            };
            return Err(unsupported(format!(
                "protobuf field number {tag}{at} is not understood"
            )));
        };
        let child = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        match ty {
            Ty::MapStr | Ty::MapBytes | Ty::MapQuantity => {
                let Raw::Len(b) = raw else {
                    return Err(ApiError::bad_request(format!(
                        "protobuf field {child} has the wrong wire type"
                    )));
                };
                let value_ty = match ty {
                    Ty::MapStr => Ty::Str,
                    Ty::MapBytes => Ty::Bytes,
                    _ => Ty::Quantity,
                };
                let (k, v) = entry(b, value_ty, &child)?;
                let map = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(k, v);
                }
            }
            _ if repeated => {
                let v = scalar(raw, ty, &child)?;
                let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = list {
                    a.push(v);
                }
            }
            _ => {
                let v = scalar(raw, ty, &child)?;
                // Go writes non-pointer fields even when unset: empty strings, zeros and
                // false are what it sends for "absent" (JSON would omit them). Only pointer
                // fields, where zero means something, keep a zero.
                let zero = v.as_str() == Some("") || v == json!(0) || v == json!(false);
                if !v.is_null() && (!zero || KEEP_ZERO.contains(&name)) {
                    out.insert(name.to_owned(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Whether a Content-Type is Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Decodes an enveloped protobuf object into JSON (with `apiVersion` and `kind`).
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let payload = body
        .strip_prefix(b"k8s\x00")
        .ok_or_else(|| ApiError::bad_request("protobuf body lacks the k8s envelope"))?;
    let envelope = message(
        payload,
        &[
            one(1, "typeMeta", Ty::Msg(TYPE_META)),
            one(2, "raw", Ty::Bytes),
            one(3, "contentEncoding", Ty::Str),
            one(4, "contentType", Ty::Str),
        ],
        "",
    )?;
    let kind = envelope["typeMeta"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let api_version = envelope["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if envelope["contentEncoding"]
        .as_str()
        .is_some_and(|e| !e.is_empty())
    {
        return Err(unsupported(
            "compressed protobuf bodies are not supported".into(),
        ));
    }
    let fields = schema(&kind).ok_or_else(|| unsupported(format!("kind {kind:?} in protobuf")))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(envelope["raw"].as_str().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("protobuf envelope"))?;
    let mut obj = message(&raw, fields, "")?;
    crate::resources::meta::set_type_meta(&mut obj, &api_version, &kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(tag: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    #[test]
    fn decodes_a_secret_like_kubectl_sends() {
        let mut meta = Vec::new();
        field(1, b"regcred", &mut meta);
        let mut entry = Vec::new();
        field(1, b".dockerconfigjson", &mut entry);
        field(2, b"{}", &mut entry);
        let mut secret = Vec::new();
        field(1, &meta, &mut secret);
        field(2, &entry, &mut secret);
        field(3, b"kubernetes.io/dockerconfigjson", &mut secret);
        let mut type_meta = Vec::new();
        field(1, b"v1", &mut type_meta);
        field(2, b"Secret", &mut type_meta);
        let mut unknown = Vec::new();
        field(1, &type_meta, &mut unknown);
        field(2, &secret, &mut unknown);
        let mut body = b"k8s\x00".to_vec();
        body.extend(unknown);
        let obj = decode(&body).unwrap();
        assert_eq!(obj["kind"], "Secret");
        assert_eq!(obj["metadata"]["name"], "regcred");
        assert_eq!(obj["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(obj["data"][".dockerconfigjson"], "e30=");
    }

    #[test]
    fn decodes_the_eviction_kubectl_drain_sends() {
        let mut preconditions = Vec::new();
        field(1, b"uid-1", &mut preconditions);
        let mut options = Vec::new();
        // gracePeriodSeconds = 0: a pointer field, so the zero is kept.
        varint(1 << 3, &mut options);
        varint(0, &mut options);
        field(2, &preconditions, &mut options);
        let mut meta = Vec::new();
        field(1, b"web", &mut meta);
        field(3, b"default", &mut meta);
        let mut eviction = Vec::new();
        field(1, &meta, &mut eviction);
        field(2, &options, &mut eviction);
        let mut type_meta = Vec::new();
        field(1, b"policy/v1", &mut type_meta);
        field(2, b"Eviction", &mut type_meta);
        let mut unknown = Vec::new();
        field(1, &type_meta, &mut unknown);
        field(2, &eviction, &mut unknown);
        let mut body = b"k8s\x00".to_vec();
        body.extend(unknown);
        let obj = decode(&body).unwrap();
        assert_eq!(obj["apiVersion"], "policy/v1");
        assert_eq!(obj["metadata"]["name"], "web");
        assert_eq!(obj["deleteOptions"]["gracePeriodSeconds"], 0);
        assert_eq!(obj["deleteOptions"]["preconditions"]["uid"], "uid-1");
    }

    #[test]
    fn unknown_fields_are_refused_not_dropped() {
        let mut secret = Vec::new();
        field(9, b"x", &mut secret);
        let err = message(&secret, SECRET, "").unwrap_err();
        assert_eq!(err.code(), 415);
    }
}
