//! State plugins keep across reloads ([`crate::Host::shared`]): an audit
//! log, rate-limit buckets, a cache, which a rebuilt instance (its
//! configuration changed) takes over from the one it replaces.
//!
//! As Caddy's `UsagePool`: values are reference-counted by the instances
//! that hold them. The pool keeps only a weak reference, so a value lives
//! while any instance of a live pipeline holds it (a new pipeline's
//! `on_init` runs before the old one is retired, so the new instances get
//! the old value) and is dropped with the last instance that held it.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

type Entry = Weak<dyn Any + Send + Sync>;

/// Values shared by plugin instances across pipelines, by type and key.
/// The kernel keeps one for its whole life and lends it to every
/// pipeline's plugins through [`crate::Host`].
#[derive(Default)]
pub struct SharedPool {
    entries: Mutex<HashMap<(TypeId, String), Entry>>,
}

impl SharedPool {
    /// The value of type `T` under `key`, made with `make` when no live
    /// instance holds one. Two keys, or two types under one key, are two
    /// values.
    pub fn get_or_make<T: Send + Sync + 'static>(&self, key: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let id = (TypeId::of::<T>(), key.to_owned());
        if let Some(v) = self.live(&id) {
            return v;
        }
        // Made outside the lock: `make` may ask the pool for another value.
        let made = Arc::new(make());
        let mut entries = self.lock();
        entries.retain(|_, e| e.strong_count() > 0);
        if let Some(v) = entries.get(&id).and_then(upgrade::<T>) {
            return v; // another instance made it meanwhile
        }
        let any: Arc<dyn Any + Send + Sync> = made.clone();
        entries.insert(id, Arc::downgrade(&any));
        made
    }

    /// How many values some instance still holds.
    pub fn len(&self) -> usize {
        self.lock().values().filter(|e| e.strong_count() > 0).count()
    }

    /// Whether no instance holds any value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live<T: Send + Sync + 'static>(&self, id: &(TypeId, String)) -> Option<Arc<T>> {
        self.lock().get(id).and_then(upgrade::<T>)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TypeId, String), Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn upgrade<T: Send + Sync + 'static>(e: &Entry) -> Option<Arc<T>> {
    e.upgrade()?.downcast::<T>().ok()
}

impl std::fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPool").field("live", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_value_lives_while_an_instance_holds_it() {
        let pool = SharedPool::default();
        let made = AtomicUsize::new(0);
        let make = || {
            made.fetch_add(1, Ordering::SeqCst);
            Mutex::new(Vec::<u32>::new())
        };
        let old = pool.get_or_make("audit", make);
        old.lock().unwrap().push(7);
        // A reload: the new instance asks before the old one is dropped.
        let new = pool.get_or_make("audit", make);
        assert!(Arc::ptr_eq(&old, &new));
        drop(old);
        assert_eq!(*new.lock().unwrap(), [7], "the state survived the reload");
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(pool.len(), 1);
        // The last instance retired: the value is dropped.
        drop(new);
        assert!(pool.is_empty());
        let again = pool.get_or_make("audit", make);
        assert!(again.lock().unwrap().is_empty(), "made again, empty");
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keys_and_types_are_separate_values() {
        let pool = SharedPool::default();
        let a = pool.get_or_make("a", || 1u32);
        let b = pool.get_or_make("b", || 2u32);
        let a64 = pool.get_or_make("a", || 3u64);
        assert_eq!((*a, *b, *a64), (1, 2, 3));
        assert_eq!(*pool.get_or_make("a", || 9u32), 1);
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn make_may_use_the_pool() {
        let pool = SharedPool::default();
        let outer = pool.get_or_make("outer", || *pool.get_or_make("inner", || 5u8) + 1);
        assert_eq!(*outer, 6);
    }
}
