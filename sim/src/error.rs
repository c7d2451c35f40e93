//! EKS-style error responses: status from the shape's `error.httpStatusCode`, the
//! `x-amzn-ErrorType` header naming the shape, and a JSON body with `message` plus the
//! resource members the shape declares.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct EksError {
    pub kind: &'static str,
    pub message: String,
    pub cluster: Option<String>,
    pub nodegroup: Option<String>,
    pub addon: Option<String>,
}

/// (shape, HTTP status, members besides `message`) from service-2.json.
const SHAPES: &[(&str, u16, &[&str])] = &[
    ("AccessDeniedException", 403, &[]),
    ("BadRequestException", 400, &[]),
    (
        "ClientException",
        400,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    (
        "InvalidParameterException",
        400,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    (
        "InvalidRequestException",
        400,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    ("InvalidStateException", 400, &["clusterName"]),
    ("NotFoundException", 404, &[]),
    (
        "ResourceInUseException",
        409,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    (
        "ResourceLimitExceededException",
        400,
        &["clusterName", "nodegroupName"],
    ),
    (
        "ResourceNotFoundException",
        404,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    (
        "ServerException",
        500,
        &["clusterName", "nodegroupName", "addonName"],
    ),
    ("ServiceUnavailableException", 503, &[]),
    ("ThrottlingException", 429, &["clusterName"]),
    // Not EKS shapes: what the AWS front door answers for unsigned requests.
    ("MissingAuthenticationTokenException", 403, &[]),
    ("InvalidSignatureException", 403, &[]),
];

impl EksError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        EksError {
            kind,
            message: message.into(),
            cluster: None,
            nodegroup: None,
            addon: None,
        }
    }
    pub fn cluster(mut self, c: &str) -> Self {
        self.cluster = Some(c.to_string());
        self
    }
    pub fn nodegroup(mut self, n: &str) -> Self {
        self.nodegroup = Some(n.to_string());
        self
    }
    pub fn addon(mut self, a: &str) -> Self {
        self.addon = Some(a.to_string());
        self
    }
    pub fn invalid_param(m: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", m)
    }
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new("InvalidRequestException", m)
    }
    pub fn in_use(m: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", m)
    }

    pub fn status(&self) -> StatusCode {
        let code = SHAPES
            .iter()
            .find(|(n, _, _)| *n == self.kind)
            .map(|s| s.1)
            .unwrap_or(400);
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
    }

    pub fn body(&self) -> Value {
        let members: &[&str] = SHAPES
            .iter()
            .find(|(n, _, _)| *n == self.kind)
            .map(|s| s.2)
            .unwrap_or(&[]);
        let mut m = Map::new();
        m.insert("message".into(), json!(self.message));
        for (name, v) in [
            ("clusterName", &self.cluster),
            ("nodegroupName", &self.nodegroup),
            ("addonName", &self.addon),
        ] {
            if let (true, Some(v)) = (members.contains(&name), v) {
                m.insert(name.into(), json!(v));
            }
        }
        Value::Object(m)
    }
}

impl IntoResponse for EksError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        h.insert(
            "x-amzn-requestid",
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid header"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_members_follow_the_model() {
        let e = EksError::in_use("busy").cluster("c").nodegroup("n");
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(
            e.body(),
            json!({"message": "busy", "clusterName": "c", "nodegroupName": "n"})
        );
        let t = EksError::new("ThrottlingException", "Rate exceeded")
            .cluster("c")
            .nodegroup("n");
        assert_eq!(t.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            t.body(),
            json!({"message": "Rate exceeded", "clusterName": "c"})
        );
        assert_eq!(EksError::not_found("x").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            EksError::new("ServerException", "x").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
