//! bext: when an HTTP/2 connection with no stream open gives back its
//! buffers (see BEXT-PATCH.md at the crate's root).
//!
//! A connection keeps a 16 KiB write buffer, an 8 KiB read buffer and a
//! 4 KiB HPACK string buffer for its life; a keep-alive connection that
//! waits between requests needs none of them. They go back once the
//! connection has had no stream open for `IDLE_RELEASE`, and are allocated
//! again by the next frame: a busy connection never frees and re-allocates.

use std::time::{Duration, Instant};

/// How long a connection waits with no stream open before it gives its
/// buffers back (hyper's HTTP/1 patch uses the same).
pub(crate) const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// The idle clock of one connection.
#[derive(Debug, Default)]
pub(crate) struct IdleRelease {
    /// When the connection was first seen waiting with no stream open.
    since: Option<Instant>,
    /// The HPACK table was already copied out in this idle period.
    compacted: bool,
}

/// What a waiting connection does with its buffers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// Keep them.
    Keep,
    /// Give them back; copy the HPACK table out of them the first time.
    Now { compact_hpack_table: bool },
}

impl IdleRelease {
    /// Called each time the connection is about to wait; `idle`: no stream
    /// open and nothing buffered. Reads the clock only on an idle
    /// connection's waits, never on a busy one's.
    pub(crate) fn on_wait(&mut self, idle: bool) -> Release {
        if !idle {
            self.since = None;
            self.compacted = false;
            return Release::Keep;
        }
        match self.since {
            None => {
                self.since = Some(Instant::now());
                Release::Keep
            }
            Some(since) if since.elapsed() >= IDLE_RELEASE => {
                let compact_hpack_table = !self.compacted;
                self.compacted = true;
                Release::Now { compact_hpack_table }
            }
            Some(_) => Release::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_after_the_idle_time_and_compacts_once_per_idle_period() {
        let mut clock = IdleRelease::default();
        assert_eq!(clock.on_wait(true), Release::Keep, "the clock starts");
        assert_eq!(clock.on_wait(true), Release::Keep, "too early");
        clock.since = Some(Instant::now() - IDLE_RELEASE);
        assert_eq!(clock.on_wait(true), Release::Now { compact_hpack_table: true });
        assert_eq!(clock.on_wait(true), Release::Now { compact_hpack_table: false });
        // A stream resets the clock.
        assert_eq!(clock.on_wait(false), Release::Keep);
        assert_eq!(clock.on_wait(true), Release::Keep);
        clock.since = Some(Instant::now() - IDLE_RELEASE);
        assert_eq!(clock.on_wait(true), Release::Now { compact_hpack_table: true });
    }
}
