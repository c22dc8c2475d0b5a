//! An in-process client: requests go straight into the router as a given user, through the
//! same authentication, admission and storage as over HTTPS, with no socket and no TLS. Node
//! registration uses it now; the kubelet and scheduler can use it (or wrap the router, a
//! tower `Service`, in `kube::Client`) the same way.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::auth::{Peer, User};
use crate::errors::ApiError;

/// The router, authenticated as one user.
#[derive(Clone, Debug)]
pub struct LocalClient {
    router: axum::Router,
    user: User,
}

impl LocalClient {
    pub(crate) fn new(router: axum::Router, user: User) -> Self {
        LocalClient { router, user }
    }

    /// The router with this client's identity attached to every request: a tower `Service`
    /// over `http::Request<axum::body::Body>` for in-process clients.
    pub fn service(&self) -> axum::Router {
        self.router.clone().layer(axum::Extension(Peer {
            user: Some(self.user.clone()),
        }))
    }

    /// Sends one request; a non-2xx answer comes back as the `Status` it carried.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Value, ApiError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let body = match body {
            Some(v) => Body::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Body::empty(),
        };
        let req = req.body(body).map_err(ApiError::internal)?;
        let resp = self
            .service()
            .oneshot(req)
            .await
            .map_err(|never| match never {})?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(ApiError::internal)?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        match serde_json::from_value(value) {
            Ok(status) => Err(ApiError {
                status: Box::new(status),
            }),
            Err(_) => Err(ApiError::new(status.as_u16(), "", status.to_string())),
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request(Method::GET, path, None, "").await
    }

    /// POST a JSON object.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request(Method::POST, path, Some(body), "application/json")
            .await
    }

    /// PUT a JSON object.
    pub async fn replace(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request(Method::PUT, path, Some(body), "application/json")
            .await
    }

    /// PATCH with a JSON merge patch.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.request(
            Method::PATCH,
            path,
            Some(patch),
            "application/merge-patch+json",
        )
        .await
    }

    /// DELETE, with an optional `DeleteOptions` body.
    pub async fn delete(&self, path: &str, options: Option<&Value>) -> Result<Value, ApiError> {
        self.request(Method::DELETE, path, options, "application/json")
            .await
    }
}
