//! What Docker is told when a call fails: a 200 reply with `{"Err": "..."}`, which dockerd shows
//! the user as the reason (`Error response from daemon: ...`).

use crate::daemon::Reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

pub type DriverResult<T> = Result<T, DriverError>;

impl DriverError {
    pub fn new(msg: impl Into<String>) -> DriverError {
        DriverError(msg.into())
    }

    /// The daemon's refusal, said as mvdp's.
    pub fn from_reply(r: &Reply) -> DriverError {
        DriverError(format!(
            "mvdp: {}",
            r.error.as_deref().unwrap_or("request refused")
        ))
    }
}
