//! What one operation of the façade is: its method, path template, name, engine and
//! handler. Each API family's module lists its operations as a table of these (with `op!`);
//! `routes` resolves requests against all the tables.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::response::Response;
use control::model::EngineKind;

use crate::call::Call;
use crate::error::ApiError;
use crate::ApiState;

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
pub(crate) type Handler = fn(Arc<ApiState>, Call) -> HandlerFuture;

/// The HTTP methods the APIs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub fn parse(method: &str) -> Option<Verb> {
        Some(match method {
            "GET" => Verb::Get,
            "POST" => Verb::Post,
            "PUT" => Verb::Put,
            "DELETE" => Verb::Delete,
            _ => return None,
        })
    }

    pub fn lower(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }
}

/// One operation OpenDMS implements.
pub(crate) struct Operation {
    pub verb: Verb,
    pub path: &'static str,
    /// The SDK's operation name where the SDK has the path; `*_v1` for seed 000's paths.
    pub name: &'static str,
    pub summary: &'static str,
    /// The engine whose API the operation belongs to; `None`: every engine's.
    pub engine: Option<EngineKind>,
    /// Answered without authentication.
    pub public: bool,
    pub handler: Handler,
}

/// `op!(Get "/path", "name", "summary", engine, module::handler)`: one row of a table.
macro_rules! op {
    (public $verb:ident $path:literal, $name:literal, $summary:literal, $handler:path) => {
        $crate::operation::Operation {
            public: true,
            ..$crate::operation::op!($verb $path, $name, $summary, None, $handler)
        }
    };
    ($verb:ident $path:literal, $name:literal, $summary:literal, $engine:expr, $handler:path) => {
        $crate::operation::Operation {
            verb: $crate::operation::Verb::$verb,
            path: $path,
            name: $name,
            summary: $summary,
            engine: $engine,
            public: false,
            handler: |state, call| Box::pin($handler(state, call)),
        }
    };
}
pub(crate) use op;
