use std::any::Any;

/// Entries kept without a heap allocation of their own.
const INLINE: usize = 3;

/// Typed values plugins share during one request, one per type (a plugin
/// keeps what its `on_response` needs from its `on_request`).
///
/// A request carries a few of these, usually none to three, so a short
/// inline list searched by type does better than a hash map: the first
/// value costs one allocation (its box) where `http::Extensions` costs
/// three (the map, its table, the box), and a lookup is a few type
/// comparisons instead of a hash. Values need not be `Clone`.
#[derive(Default)]
pub struct Extensions {
    entries: smallvec::SmallVec<[Box<dyn Any + Send + Sync>; INLINE]>,
}

impl Extensions {
    /// An empty set; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        if let Some(slot) = self.get_mut::<T>() {
            return Some(std::mem::replace(slot, value));
        }
        self.entries.push(Box::new(value));
        None
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.entries.iter().find_map(|v| (**v).downcast_ref())
    }

    /// The value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.entries.iter_mut().find_map(|v| (**v).downcast_mut())
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let at = self.entries.iter().position(|v| (**v).is::<T>())?;
        self.entries.swap_remove(at).downcast().ok().map(|b| *b)
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct A(u32);
    #[derive(Debug, PartialEq)]
    struct B(&'static str);
    struct Unit;

    #[test]
    fn one_value_per_type_in_and_out() {
        let mut x = Extensions::new();
        assert!(x.get::<A>().is_none());
        assert_eq!(x.insert(A(1)), None);
        assert_eq!(x.insert(B("b")), None);
        assert_eq!(x.insert(A(2)), Some(A(1)), "the same type replaces");
        assert_eq!(x.get::<A>(), Some(&A(2)));
        x.get_mut::<B>().unwrap().0 = "c";
        assert_eq!(x.get::<B>(), Some(&B("c")));
        x.insert(Unit);
        x.insert(7u8);
        x.insert(8u16);
        assert_eq!(x.len(), 5, "beyond the inline entries");
        assert_eq!(x.remove::<A>(), Some(A(2)));
        assert!(x.get::<A>().is_none());
        assert_eq!(x.get::<u16>(), Some(&8));
        assert!(x.get::<Unit>().is_some());
        assert_eq!(x.remove::<A>(), None);
    }
}
