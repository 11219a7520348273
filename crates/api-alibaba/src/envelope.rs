//! Answers: `RequestId`, `Code`, `Message`, `Success` and the action's fields, as JSON or as
//! XML under `<{Action}Response>` (lists become repeated elements named by their wrapper
//! key, as `InstanceList.InstanceVO[]` is in the documents).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct AliError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AliError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> AliError {
        AliError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn missing(param: &str) -> AliError {
        AliError::new(
            400,
            "MissingParameter",
            format!("The input parameter \"{param}\" that is mandatory for processing this request is not supplied."),
        )
    }

    pub fn invalid(param: &str, detail: impl std::fmt::Display) -> AliError {
        AliError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{param}\" is not valid: {detail}"),
        )
    }
}

impl From<ControlError> for AliError {
    fn from(e: ControlError) -> AliError {
        use ControlError as E;
        let msg = e.to_string();
        match e {
            E::InstanceNotFound(_) | E::InvalidInstanceId(_) => AliError::new(
                404,
                "InvalidInstanceId.NotFound",
                format!("The instance does not exist: {msg}"),
            ),
            E::Busy(_) | E::CannotDelete(_) => AliError::new(400, "IncorrectInstanceStatus", msg),
            E::DuplicateName(_) => AliError::new(400, "InvalidParameter.NameExists", msg),
            E::TopicExists(_) => AliError::new(400, "InvalidParameter.TopicExists", msg),
            E::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                AliError::new(
                    500,
                    "InternalError",
                    "The request processing has failed due to some unknown error.",
                )
            }
            E::NotSupported(m) => AliError::new(400, "UnsupportedOperation", m),
            _ => AliError::new(400, "InvalidParameter", msg),
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_value(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            for item in items {
                xml_value(name, item, out);
            }
        }
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                xml_value(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

pub fn to_xml(root: &str, body: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    xml_value(root, body, &mut out);
    out
}

fn render(status: u16, root: &str, body: Value, json: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if json {
        (status, axum::Json(body)).into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/xml;charset=utf-8")],
            to_xml(root, &body),
        )
            .into_response()
    }
}

pub fn success_response(
    action: &str,
    fields: Map<String, Value>,
    json: bool,
    request_id: &str,
) -> Response {
    let mut body = Map::new();
    body.insert("RequestId".into(), json!(request_id));
    // The tag operations answer only RequestId and their own fields.
    if crate::cms::is_monitor_action(action) {
        // CloudMonitor types Code as a string.
        body.insert("Code".into(), json!("200"));
        body.insert("Message".into(), json!("success"));
        body.insert("Success".into(), json!(true));
    } else if !matches!(
        action,
        "TagResources" | "UntagResources" | "ListTagResources"
    ) {
        body.insert("Code".into(), json!(200));
        body.insert("Message".into(), json!("operation success."));
        body.insert("Success".into(), json!(true));
    }
    body.extend(fields);
    render(200, &format!("{action}Response"), Value::Object(body), json)
}

pub fn error_response(e: &AliError, _action: &str, json: bool, request_id: &str) -> Response {
    let body = json!({
        "RequestId": request_id,
        "HostId": "alikafka.opendms",
        "Code": e.code,
        "Message": e.message,
        "Recommend": "",
        "Success": false,
    });
    render(e.status, "Error", body, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_repeated_elements() {
        let body = json!({"RequestId": "r", "InstanceList": {"InstanceVO": [{"InstanceId": "a"}, {"InstanceId": "b<"}]}});
        assert_eq!(
            to_xml("GetInstanceListResponse", &body),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><GetInstanceListResponse><InstanceList><InstanceVO><InstanceId>a</InstanceId></InstanceVO><InstanceVO><InstanceId>b&lt;</InstanceId></InstanceVO></InstanceList><RequestId>r</RequestId></GetInstanceListResponse>"
        );
    }
}
