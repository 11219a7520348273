//! The one place where failures become Huawei error responses.
//!
//! Seed 000 numbers Kafka errors `111` + HTTP status + sequence (`111404022`); Huawei's V2
//! services answer the same errors as `DMS.00` + status + sequence (`DMS.00404022`, as in
//! the V2 documents of the other engines and the SDK's own examples). So every error is kept
//! as its six-digit tail and rendered per API generation: `/v1.0/...` paths get the seed-000
//! form, everything else the V2 form.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use control::ControlError;

/// Which generation of the API a request came in on; it picks the error code format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiGeneration {
    V1,
    V2,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A DMS code as its six digits (`"404022"`), or a complete code of another service
    /// (`"APIGW.0301"`).
    pub code: Code,
    pub message: String,
}

/// The code of [`ApiError::not_supported`] (`DMS.00501001`, `111501001` on `/v1.0`).
pub const NOT_SUPPORTED: &str = "501001";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Dms(&'static str),
    Other(&'static str),
}

impl ApiError {
    pub fn dms(status: u16, tail: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: Code::Dms(tail),
            message: message.into(),
        }
    }

    pub fn other(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: Code::Other(code),
            message: message.into(),
        }
    }

    pub fn code_for(&self, generation: ApiGeneration) -> String {
        match (self.code, generation) {
            (Code::Dms(tail), ApiGeneration::V1) => format!("111{tail}"),
            (Code::Dms(tail), ApiGeneration::V2) => format!("DMS.00{tail}"),
            (Code::Other(c), _) => c.to_string(),
        }
    }

    pub fn render(&self, generation: ApiGeneration, request_id: &str) -> Response {
        let body = serde_json::json!({
            "error_code": self.code_for(generation),
            "error_msg": self.message,
            "request_id": request_id,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }

    pub fn not_found_url() -> ApiError {
        ApiError::dms(404, "404001", "The requested URL does not exist.")
    }

    /// An operation of an official SDK that OpenDMS does not implement: 501, a code no other
    /// error has, and the operation's name.
    pub fn not_supported(operation: &str, engine: Option<control::model::EngineKind>) -> ApiError {
        let of = engine
            .map(|e| format!(" of {e} instances"))
            .unwrap_or_default();
        ApiError::dms(
            501,
            NOT_SUPPORTED,
            format!("The operation {operation}{of} is not supported by OpenDMS."),
        )
    }

    /// A path several engines have, for an engine that does not have it.
    pub fn not_found_for(engine: Option<control::model::EngineKind>) -> ApiError {
        match engine {
            Some(e) => ApiError::dms(
                404,
                "404001",
                format!("The requested URL does not exist for {e} instances."),
            ),
            None => ApiError::not_found_url(),
        }
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::dms(405, "405001", "This request method is not allowed.")
    }

    pub fn empty_body() -> ApiError {
        ApiError::dms(400, "400004", "The request body is empty.")
    }

    pub fn bad_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::dms(
            400,
            "400005",
            format!(
                "The message body is not in JSON format or contains invalid characters: {detail}"
            ),
        )
    }

    pub fn bad_field(field: &str, detail: impl std::fmt::Display) -> ApiError {
        ApiError::dms(
            400,
            "400063",
            format!("Invalid configuration parameter {field}: {detail}"),
        )
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::dms(500, "500000", "Internal service error.")
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        use ControlError as E;
        let msg = e.to_string();
        match e {
            E::UnsupportedEngine(_) => ApiError::dms(400, "400007", format!("Unsupported type. {msg}")),
            E::EngineUnavailable(_) => ApiError::dms(501, NOT_SUPPORTED, format!("Not supported by OpenDMS: {msg}.")),
            E::UnsupportedVersion(_) => ApiError::dms(400, "400008", format!("Unsupported version. {msg}")),
            E::InvalidProduct(_) => ApiError::dms(400, "400009", format!("Invalid product_id. {msg}")),
            E::InvalidName => ApiError::dms(
                400,
                "400010",
                "Invalid instance name. The name must be 4 to 64 characters long. Only letters, digits, underscores (_), and hyphens (-) are allowed.",
            ),
            E::DescriptionTooLong => ApiError::dms(
                400,
                "400011",
                "The instance description can contain a maximum of 1024 characters.",
            ),
            E::WeakPassword(_) => ApiError::dms(
                400,
                "400012",
                format!("The password does not meet the complexity requirements. {msg}"),
            ),
            E::InvalidUsername(_) => ApiError::dms(400, "400015", format!("Invalid username. {msg}")),
            E::EmptyField("vpc_id") => ApiError::dms(400, "400013", "vpc_id in the request is empty."),
            E::EmptyField("security_group_id") => {
                ApiError::dms(400, "400014", "security_group_id in the request is empty.")
            }
            E::EmptyField("subnet_id") => ApiError::dms(400, "400016", "subnet_id in the request is empty."),
            E::EmptyField(f) => ApiError::dms(400, "400063", format!("Invalid configuration parameter {f}.")),
            E::UnknownZone(_) => ApiError::dms(400, "400042", format!("The AZ does not exist. {msg}")),
            E::ZoneCount(_) => ApiError::dms(400, "400067", format!("The available_zones parameter is invalid: {msg}.")),
            E::DuplicateName(_) => ApiError::dms(400, "400060", "This instance name already exists."),
            E::InvalidInstanceId(_) => ApiError::dms(400, "400061", "Invalid instance ID format."),
            E::InvalidStatusFilter(_) => ApiError::dms(
                400,
                "400062",
                "Invalid request parameter. The status of an instance to be queried must be a valid instance status.",
            ),
            E::InvalidParameter(p) => ApiError::dms(400, "400063", format!("Invalid configuration parameter {p}.")),
            E::InvalidAction => ApiError::dms(
                400,
                "400064",
                "The action parameter in the request must be delete or restart.",
            ),
            E::EmptyInstances => ApiError::dms(400, "400065", "The instances parameter in the request is empty."),
            E::TooManyInstances => ApiError::dms(
                400,
                "400100",
                "The instances array can contain a maximum of 50 instance IDs.",
            ),
            E::Busy(_) => ApiError::dms(
                400,
                "400026",
                format!("This operation is not allowed due to the instance status. {msg}"),
            ),
            E::CannotDelete(_) => ApiError::dms(400, "400099", msg),
            E::InvalidMaintainWindow => ApiError::dms(400, "400106", "Invalid maintenance time window."),
            E::InvalidStorage(_) => ApiError::dms(400, "400500", format!("Invalid disk space. {msg}")),
            E::InvalidSpecCode(_) => ApiError::dms(400, "400125", format!("Invalid SPEC_CODE. {msg}")),
            E::ExtendLimit => ApiError::dms(
                400,
                "400124",
                "The maximum number of disk expansion times has been reached.",
            ),
            E::InstanceNotFound(_) => ApiError::dms(404, "404022", "This instance does not exist."),
            E::InvalidTopicName(rule) => ApiError::dms(400, "400101", rule),
            E::TopicPartitions(max) => ApiError::dms(
                400,
                "400102",
                format!("The number of partitions created for a Kafka topic must be within the range of 1–{max}."),
            ),
            E::TopicReplicas(max) => ApiError::dms(
                400,
                "400103",
                format!("The number of replicas created for a Kafka topic must be within the range of 1–{max}."),
            ),
            E::TopicRetention(max) => ApiError::dms(
                400,
                "400105",
                format!("The message retention period of a Kafka topic must be within the range of 1–{max}."),
            ),
            E::TopicExists(_) => ApiError::dms(400, "400800", "Duplicate topic name."),
            E::Refused(m) => ApiError::dms(400, "400800", format!("Invalid parameter. {m}")),
            E::TaskNotFound(_) => ApiError::dms(404, "404001", msg),
            E::PluginNotFound(_) => ApiError::dms(400, "400970", format!("RabbitMQ plugin is not exist. {msg}")),
            E::GroupNotFound(_) => ApiError::other(
                404,
                "DMS.10240405",
                format!("The consumption group ID is incorrect or not found. {msg}"),
            ),
            E::GroupExists(_) => ApiError::other(400, "DMS.10240018", format!("The consumer group already exists. {msg}")),
            E::GroupOffline(_) => ApiError::other(400, "DMS.50050004", format!("The consumer group is offline. {msg}")),
            E::InvalidGroupName(_) => ApiError::other(400, "DMS.10240016", format!("The group ID format is invalid. {msg}")),
            E::InvalidTimestamp(_) => ApiError::dms(400, "400142", format!("Timestamp is invalid. {msg}")),
            E::NotSupported(m) => ApiError::dms(400, "400800", format!("Invalid parameter. {m}")),
            E::Internal(m) => ApiError::internal(m),
        }
    }
}
