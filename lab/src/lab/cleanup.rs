//! The cleanup guard: the namespaces a lab created so far, removed on drop unless kept.

use mvdp_control::error::{Error, Result};
use mvdp_control::netns::NetNs;

use super::registry::{live, next_id};

/// Owns the namespaces created so far; removes them on drop unless kept. Registered in the [live registry](super::registry).
#[derive(Debug)]
pub(super) struct Created {
    pub(super) id: u64,
    pub(super) namespaces: Vec<NetNs>,
    pub(super) keep: bool,
}

impl Created {
    pub(super) fn new() -> Self {
        let id = next_id();
        live().insert(id, Vec::new());
        Created {
            id,
            namespaces: Vec::new(),
            keep: false,
        }
    }

    pub(super) fn create(&mut self, name: &str) -> Result<NetNs> {
        // Register the name before creating it, so a signal arriving in between still removes it.
        live().entry(self.id).or_default().push(name.to_string());
        match NetNs::create(name) {
            Ok(ns) => {
                self.namespaces.push(ns.clone());
                Ok(ns)
            }
            Err(e) => {
                if let Some(v) = live().get_mut(&self.id) {
                    v.retain(|n| n != name);
                }
                Err(e)
            }
        }
    }

    pub(super) fn destroy(&mut self) -> Result<()> {
        let mut first_err = None;
        // Containers first, the wire last: reverse creation order.
        for ns in self.namespaces.drain(..).rev() {
            match ns.delete() {
                Ok(()) | Err(Error::NetnsNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!("lab cleanup: {e}");
                    first_err.get_or_insert(e);
                }
            }
        }
        live().remove(&self.id);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.keep {
            live().remove(&self.id);
        } else {
            let _ = self.destroy();
        }
    }
}
