//! The pre- and post-remove hooks of a store (API-5.0 2.1), shared by the keystore and the
//! notification keystore.

use crate::error::{PersistenceError, Result};
use crate::store::{RemoveHook, RemoveHookArgs};
use std::sync::RwLock;

/// Hooks awaited in order around each single-key remove.
#[derive(Default)]
pub(crate) struct RemoveHooks {
    pre: RwLock<Vec<RemoveHook>>,
    post: RwLock<Vec<RemoveHook>>,
}

impl RemoveHooks {
    /// Adds a hook run before (`pre`) or after each remove.
    pub(crate) fn add(&self, pre: bool, hook: RemoveHook) {
        let list = if pre { &self.pre } else { &self.post };
        list.write().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    /// Runs the pre (`pre`) or post hooks for `args`; the first failure is
    /// [`PersistenceError::HookFailed`] naming the key.
    pub(crate) async fn run(&self, pre: bool, args: &RemoveHookArgs) -> Result<()> {
        let list = if pre { &self.pre } else { &self.post };
        // Cloned so that no lock is held across the hooks' awaits.
        let hooks: Vec<RemoveHook> = list.read().unwrap_or_else(|p| p.into_inner()).clone();
        for h in hooks {
            h(args.clone())
                .await
                .map_err(|source| PersistenceError::HookFailed {
                    key: args.key.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}
