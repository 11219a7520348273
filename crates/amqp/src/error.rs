//! AMQP 0-9-1 reply codes and the channel and connection exceptions the broker raises, worded
//! as RabbitMQ words them (`NOT_FOUND - no queue 'q' in vhost '/'`).

use std::fmt;

/// The reply codes of AMQP 0-9-1 (spec §1.4.2 and RabbitMQ's use of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    ContentTooLarge,
    NoRoute,
    NoConsumers,
    ConnectionForced,
    InvalidPath,
    AccessRefused,
    NotFound,
    ResourceLocked,
    PreconditionFailed,
    FrameError,
    SyntaxError,
    CommandInvalid,
    ChannelError,
    UnexpectedFrame,
    ResourceError,
    NotAllowed,
    NotImplemented,
    InternalError,
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        match self {
            ReplyCode::ContentTooLarge => 311,
            ReplyCode::NoRoute => 312,
            ReplyCode::NoConsumers => 313,
            ReplyCode::ConnectionForced => 320,
            ReplyCode::InvalidPath => 402,
            ReplyCode::AccessRefused => 403,
            ReplyCode::NotFound => 404,
            ReplyCode::ResourceLocked => 405,
            ReplyCode::PreconditionFailed => 406,
            ReplyCode::FrameError => 501,
            ReplyCode::SyntaxError => 502,
            ReplyCode::CommandInvalid => 503,
            ReplyCode::ChannelError => 504,
            ReplyCode::UnexpectedFrame => 505,
            ReplyCode::ResourceError => 506,
            ReplyCode::NotAllowed => 530,
            ReplyCode::NotImplemented => 540,
            ReplyCode::InternalError => 541,
        }
    }

    /// The name RabbitMQ puts before the text.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Soft errors close the channel; hard ones the whole connection.
    pub fn closes_connection(self) -> bool {
        !matches!(
            self,
            ReplyCode::ContentTooLarge
                | ReplyCode::NoRoute
                | ReplyCode::NoConsumers
                | ReplyCode::AccessRefused
                | ReplyCode::NotFound
                | ReplyCode::ResourceLocked
                | ReplyCode::PreconditionFailed
        )
    }
}

/// A channel or connection exception: the reply code and text, and the method that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    pub code: ReplyCode,
    /// The reply text as sent: `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    pub fn new(code: ReplyCode, detail: impl fmt::Display) -> AmqpError {
        let mut text = format!("{} - {detail}", code.name());
        // reply-text is a short string.
        if text.len() > 255 {
            let mut cut = 255;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        AmqpError {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    /// An error whose reply text is the bare code name (RabbitMQ's `INTERNAL_ERROR`).
    pub fn bare(code: ReplyCode) -> AmqpError {
        AmqpError {
            code,
            text: code.name().to_string(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Names the method that caused the error.
    pub fn on(mut self, class_id: u16, method_id: u16) -> AmqpError {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    pub fn not_found(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotFound, detail)
    }

    pub fn precondition(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::PreconditionFailed, detail)
    }

    pub fn access_refused(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::AccessRefused, detail)
    }

    pub fn resource_locked(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::ResourceLocked, detail)
    }

    pub fn command_invalid(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::CommandInvalid, detail)
    }

    pub fn channel_error(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::ChannelError, detail)
    }

    pub fn unexpected_frame(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::UnexpectedFrame, detail)
    }

    pub fn frame_error(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::FrameError, detail)
    }

    pub fn syntax_error(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::SyntaxError, detail)
    }

    pub fn not_implemented(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotImplemented, detail)
    }

    pub fn not_allowed(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::NotAllowed, detail)
    }

    pub fn internal(detail: impl fmt::Display) -> AmqpError {
        AmqpError::new(ReplyCode::InternalError, detail)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.code.code())
    }
}

impl std::error::Error for AmqpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_codes_read_as_rabbitmq_sends_them() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'").on(50, 10);
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!((e.code.code(), e.class_id, e.method_id), (404, 50, 10));
        assert!(!e.code.closes_connection());
        assert!(ReplyCode::FrameError.closes_connection());
        let long = AmqpError::precondition("é".repeat(300));
        assert!(long.text.len() <= 255);
    }
}
