//! The pre- and post-remove hooks of a store (API-5.0 2.1), shared by the keystore and the
//! notification keystore, and the three ways a removal is wrapped in them: one key, a set
//! of keys, the expiry sweep.

use crate::error::{PersistenceError, Result};
use crate::store::{RemoveHook, RemoveHookArgs};
use std::future::Future;
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

    /// The remove of one key: the pre hooks for `args`, then `remove`, then the post
    /// hooks. A failing pre hook ends the call before anything is removed.
    pub(crate) async fn around<T>(
        &self,
        args: &RemoveHookArgs,
        remove: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.run(true, args).await?;
        let removed = remove.await?;
        self.run(false, args).await?;
        Ok(removed)
    }

    /// The remove of a set of distinct `keys`: for each key that `present` finds, in order,
    /// its pre hooks run (a failure ends the call before anything is removed); `remove`
    /// then removes those keys as one unit and answers how many it removed; then the post
    /// hooks of each of them run. `Ok(0)` when no key is present.
    pub(crate) async fn around_many<K, Fut>(
        &self,
        keys: impl IntoIterator<Item = K>,
        skip_commit: bool,
        present: impl Fn(&str) -> Result<bool>,
        remove: impl FnOnce(Vec<String>) -> Fut,
    ) -> Result<u64>
    where
        K: AsRef<str> + Into<String>,
        Fut: Future<Output = Result<u64>>,
    {
        let mut found: Vec<String> = Vec::new();
        for key in keys {
            if present(key.as_ref())? {
                let key: String = key.into();
                let args = RemoveHookArgs {
                    key: key.clone(),
                    skip_commit,
                };
                self.run(true, &args).await?;
                found.push(key);
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        let removed = remove(found.clone()).await?;
        for key in found {
            let args = RemoveHookArgs { key, skip_commit };
            self.run(false, &args).await?;
        }
        Ok(removed)
    }

    /// The expiry sweep (`delete_expired_keys`): the pre hooks of each of `keys`, then
    /// `remove` of those whose pre hooks passed (it answers the keys it removed), then the
    /// post hooks of each removed key, all with `skip_commit`. A failing hook does not stop
    /// the sweep (its key stays, if it was a pre hook); the first failure is the result.
    /// `Ok(true)` otherwise, also when there is nothing to sweep.
    pub(crate) async fn sweep<Fut>(
        &self,
        keys: Vec<String>,
        remove: impl FnOnce(Vec<String>) -> Fut,
    ) -> Result<bool>
    where
        Fut: Future<Output = Result<Vec<String>>>,
    {
        if keys.is_empty() {
            return Ok(true);
        }
        let mut first_error = None;
        let mut cleared = Vec::with_capacity(keys.len());
        for key in keys {
            let args = RemoveHookArgs {
                key: key.clone(),
                skip_commit: true,
            };
            match self.run(true, &args).await {
                Ok(()) => cleared.push(key),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for key in remove(cleared).await? {
            let args = RemoveHookArgs {
                key,
                skip_commit: true,
            };
            if let Err(e) = self.run(false, &args).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }
}
