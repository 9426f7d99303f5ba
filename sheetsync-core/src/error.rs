//! The one error type of sheetsync: a kind, whether retrying can help, and context.
//!
//! Adapters map their native errors (SQLSTATE codes, HTTP statuses) to an [`ErrorKind`] and an
//! [`ErrorStatus`] once, at their boundary; everything above them decides on those two alone.

use std::fmt;

/// What went wrong, independent of the adapter that noticed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Something no other kind describes; usually a bug or an unexpected server answer.
    Unexpected,
    /// The adapter cannot do this operation (see its [`Capabilities`](crate::Capabilities)).
    Unsupported,
    /// The configuration or mapping is invalid.
    ConfigInvalid,
    /// A spreadsheet, tab, table or row that must exist does not.
    NotFound,
    /// The credentials are valid but lack a permission.
    PermissionDenied,
    /// No or invalid credentials.
    Unauthenticated,
    /// A quota or rate limit was hit.
    RateLimited,
    /// The connection to a side failed or was dropped.
    Connection,
    /// A side's schema or header does not match the mapping.
    SchemaMismatch,
    /// A value could not be converted to or from the column's type.
    InvalidData,
    /// A conditional write found the row changed since it was read.
    Conflict,
    /// A safety guard (the mass-delete guard) stopped the operation.
    GuardTripped,
    /// A write's answer was lost (a timeout, a dropped connection, a 5xx) after the request
    /// may have been applied. Re-sending it blindly could apply it twice, or at positions that
    /// moved meanwhile: find out what happened first.
    OutcomeUnknown,
    /// A mapping's saved state belongs to another spreadsheet, tab or table than the ones it
    /// points at now.
    IdentityMismatch,
    /// This process no longer owns the mapping: another replica took it over (its ownership
    /// epoch is later than the one this commit carries), or the lock that made this process
    /// the owner was lost. It must stop writing the mapping.
    NotOwner,
}

impl ErrorKind {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unexpected => "unexpected",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::ConfigInvalid => "config_invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Connection => "connection",
            ErrorKind::SchemaMismatch => "schema_mismatch",
            ErrorKind::InvalidData => "invalid_data",
            ErrorKind::Conflict => "conflict",
            ErrorKind::GuardTripped => "guard_tripped",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::IdentityMismatch => "identity_mismatch",
            ErrorKind::NotOwner => "not_owner",
        }
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether retrying the operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// Retrying will fail the same way.
    Permanent,
    /// Retrying may succeed (rate limits, dropped connections, 5xx).
    Temporary,
    /// It was temporary, but retries were exhausted.
    Persistent,
}

impl ErrorStatus {
    /// A short, stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::Permanent => "permanent",
            ErrorStatus::Temporary => "temporary",
            ErrorStatus::Persistent => "persistent",
        }
    }
}

impl serde::Serialize for ErrorStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The error type of every sheetsync crate.
pub struct Error {
    kind: ErrorKind,
    status: ErrorStatus,
    message: String,
    operation: &'static str,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with sheetsync's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A permanent error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::RateLimited | ErrorKind::Connection | ErrorKind::OutcomeUnknown => {
                ErrorStatus::Temporary
            }
            _ => ErrorStatus::Permanent,
        };
        Error {
            kind,
            status,
            message: message.into(),
            operation: "",
            context: Vec::new(),
            source: None,
        }
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error naming the operation and adapter.
    pub fn unsupported(operation: &'static str, adapter: &str) -> Self {
        Error::new(
            ErrorKind::Unsupported,
            format!("{adapter} does not support {operation}"),
        )
        .with_operation(operation)
    }

    /// Marks the error as temporary: retrying may help.
    pub fn temporary(mut self) -> Self {
        self.status = ErrorStatus::Temporary;
        self
    }

    /// Marks the error as permanent: retrying cannot help.
    pub fn permanent(mut self) -> Self {
        self.status = ErrorStatus::Permanent;
        self
    }

    /// Marks a temporary error whose retries were exhausted.
    pub fn persistent(mut self) -> Self {
        if self.status == ErrorStatus::Temporary {
            self.status = ErrorStatus::Persistent;
        }
        self
    }

    /// Names the operation that failed (`"scan"`, `"apply"`, `"values.batchGet"`, ...).
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = operation;
        self
    }

    /// Adds a piece of context (`("table", "orders")`).
    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying can help.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// True when retrying may succeed.
    pub fn is_temporary(&self) -> bool {
        self.status == ErrorStatus::Temporary
    }

    /// The human-readable message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The operation that failed, if named.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The context pairs added with [`Error::with_context`].
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.operation.is_empty() {
            write!(f, " in {}", self.operation)?;
        }
        let status = match self.status {
            ErrorStatus::Permanent => "",
            ErrorStatus::Temporary => " (temporary)",
            ErrorStatus::Persistent => " (persistent)",
        };
        write!(f, "{status}: {}", self.message)?;
        for (k, v) in &self.context {
            write!(f, ", {k}: {v}")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_default_statuses_and_display_context() {
        let e = Error::new(ErrorKind::RateLimited, "429 from Sheets")
            .with_operation("values.batchGet")
            .with_context("spreadsheet", "abc");
        assert!(e.is_temporary());
        assert_eq!(
            e.to_string(),
            "rate_limited in values.batchGet (temporary): 429 from Sheets, spreadsheet: abc"
        );
        let e = e.persistent();
        assert_eq!(e.status(), ErrorStatus::Persistent);
        let p = Error::new(ErrorKind::ConfigInvalid, "bad").persistent();
        assert_eq!(p.status(), ErrorStatus::Permanent);
    }
}
