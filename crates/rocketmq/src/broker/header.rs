//! Reading a request's custom header fields, refusing as Apache does when one is missing or
//! not a number (its `decodeCommandCustomHeader` throws, and the remoting layer answers
//! SYSTEM_ERROR with the exception's text).

use crate::remoting::{codes, RemotingCommand};

pub struct HeaderError(String);

impl HeaderError {
    pub fn into_response(self, req: &RemotingCommand) -> RemotingCommand {
        RemotingCommand::response_to(req, codes::SYSTEM_ERROR, Some(self.0))
    }
}

pub trait Header {
    /// A custom header field by name.
    fn field(&self, key: &str) -> Option<&str>;

    fn required(&self, key: &str) -> Result<&str, HeaderError> {
        self.field(key).ok_or_else(|| {
            HeaderError(format!(
                "org.apache.rocketmq.remoting.exception.RemotingCommandException: the custom field <{key}> is null"
            ))
        })
    }

    fn int(&self, key: &str) -> Result<i64, HeaderError> {
        let v = self.required(key)?;
        parse_int(key, v)
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, HeaderError> {
        match self.field(key) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() || v == "null" => Ok(None),
            Some(v) => parse_int(key, v).map(Some),
        }
    }
}

impl Header for RemotingCommand {
    fn field(&self, key: &str) -> Option<&str> {
        self.ext(key)
    }
}

fn parse_int(key: &str, v: &str) -> Result<i64, HeaderError> {
    v.trim().parse().map_err(|_| {
        HeaderError(format!(
            "java.lang.NumberFormatException: For input string: \"{v}\" (field <{key}>)"
        ))
    })
}

/// `?` for handlers: a header error becomes the response.
macro_rules! field {
    ($req:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e.into_response($req),
        }
    };
}
pub(crate) use field;
