//! One error type for every operation; its message names the kernel object.

use std::fmt;
use std::io;

use nix::errno::Errno;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from one operation, e.g. `creating vxlan wvx-42 (vni 42): File exists`.
///
/// The context says what was being done to which object; the cause is the
/// kernel's errno when there is one ([`Error::errno`]), so callers can branch
/// on `EEXIST`, `ENOENT`, … without parsing text.
#[derive(Debug)]
pub struct Error {
    context: String,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    Errno(Errno),
    /// An errno whose meaning the context already says in full.
    Quiet(Errno),
    Io(io::Error),
    Msg(String),
}

impl Error {
    pub(crate) fn from_errno(context: impl Into<String>, errno: Errno) -> Self {
        Error {
            context: context.into(),
            cause: Cause::Errno(errno),
        }
    }

    /// An error whose message is complete on its own (e.g. "no such network
    /// namespace: x") but which still reports `errno`.
    pub(crate) fn quiet(message: impl Into<String>, errno: Errno) -> Self {
        Error {
            context: message.into(),
            cause: Cause::Quiet(errno),
        }
    }

    pub(crate) fn io(context: impl Into<String>, err: io::Error) -> Self {
        // Keep io errors that carry an errno as errno so `errno()` works.
        match err.raw_os_error() {
            Some(code) => Self::from_errno(context, Errno::from_raw(code)),
            None => Error {
                context: context.into(),
                cause: Cause::Io(err),
            },
        }
    }

    pub(crate) fn msg(context: impl Into<String>, msg: impl Into<String>) -> Self {
        Error {
            context: context.into(),
            cause: Cause::Msg(msg.into()),
        }
    }

    /// What was being done when the error happened (the part before `: `).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kernel's errno, if the failure came from a system call or a netlink NACK.
    pub fn errno(&self) -> Option<Errno> {
        match &self.cause {
            Cause::Errno(e) | Cause::Quiet(e) => Some(*e),
            _ => None,
        }
    }

    /// True if the object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// True if the object (or what it refers to) does not exist
    /// (`ENOENT`, `ENODEV`, `ESRCH`, `EADDRNOTAVAIL`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::Errno(e) => write!(f, "{}: {}", self.context, e.desc()),
            Cause::Quiet(_) => f.write_str(&self.context),
            Cause::Io(e) => write!(f, "{}: {}", self.context, e),
            Cause::Msg(m) => write!(f, "{}: {}", self.context, m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Failure of a netlink exchange before the context is known.
#[derive(Debug)]
pub(crate) enum RawError {
    Errno(Errno),
    Msg(String),
}

impl RawError {
    pub(crate) fn errno(&self) -> Option<Errno> {
        match self {
            RawError::Errno(e) => Some(*e),
            RawError::Msg(_) => None,
        }
    }

    pub(crate) fn with(self, context: impl Into<String>) -> Error {
        match self {
            RawError::Errno(e) => Error::from_errno(context, e),
            RawError::Msg(m) => Error::msg(context, m),
        }
    }
}

/// Attach context to a raw netlink result lazily.
pub(crate) trait Context<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, RawError> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.with(f()))
    }
}

impl<T> Context<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::from_errno(f(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_object_and_errno_text() {
        let e = Error::from_errno("creating vxlan wvx-42 (vni 42)", Errno::EEXIST);
        assert_eq!(e.to_string(), "creating vxlan wvx-42 (vni 42): File exists");
        assert!(e.is_exists());
        let e = Error::io("x", io::Error::from_raw_os_error(libc_enodev()));
        assert!(e.is_not_found());
    }

    fn libc_enodev() -> i32 {
        Errno::ENODEV as i32
    }
}
