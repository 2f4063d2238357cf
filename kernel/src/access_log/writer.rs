//! The buffer workers append lines to, and the thread that writes it to
//! the file (or standard output).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use crate::config::platform::{AccessLogConfig, AccessLogFormat};

/// One dedicated access log: its buffer and writer thread. Dropping it
/// lets the thread write what is left and end.
pub struct AccessLog {
    shared: Arc<Shared>,
    /// What it was made from, so a reload with the same setting keeps it.
    pub config: AccessLogConfig,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    limit: usize,
    dropped: Arc<AtomicU64>,
    reopen: AtomicBool,
    closed: AtomicBool,
    /// Set by the thread once it wrote everything and ended.
    done: (Mutex<bool>, Condvar),
}

/// Every open access log, for SIGUSR1 and the flush at exit.
static OPEN: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Reopens every access log's file (SIGUSR1, after logrotate moved it).
pub fn reopen_all() {
    for shared in live() {
        shared.reopen.store(true, Ordering::Relaxed);
        shared.wake.notify_one();
    }
}

fn live() -> Vec<Arc<Shared>> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|w| w.strong_count() > 0);
    open.iter().filter_map(Weak::upgrade).collect()
}

impl AccessLog {
    /// Opens the file (an error names it) and starts the writer thread;
    /// `dropped` counts the lines a full buffer refused.
    pub fn open(config: &AccessLogConfig, dropped: Arc<AtomicU64>) -> Result<AccessLog, String> {
        let out = Output::open(config.path.as_deref())?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(4096)),
            wake: Condvar::new(),
            limit: usize::try_from(config.buffer.0).unwrap_or(usize::MAX),
            dropped,
            reopen: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            done: (Mutex::new(false), Condvar::new()),
        });
        let path = config.path.clone();
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("bext-access-log".into())
            .spawn(move || write_out(&thread, out, path))
            .map_err(|e| format!("cannot start the access log's thread: {e}"))?;
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&shared));
        Ok(AccessLog {
            shared,
            config: config.clone(),
        })
    }

    /// The line format.
    pub fn format(&self) -> AccessLogFormat {
        self.config.format
    }

    /// Queues a whole line (ending in `\n`); never waits for the disk. A
    /// line that does not fit is dropped and counted.
    pub fn push(&self, line: &[u8]) {
        let mut pending = self.shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() + line.len() > self.shared.limit {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        drop(pending);
        // The thread sleeps only on an empty buffer: one wake-up per batch.
        if first {
            self.shared.wake.notify_one();
        }
    }

    /// Writes what is queued and waits until it is written (at exit).
    pub fn close(&self) {
        close(&self.shared, true);
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        close(&self.shared, false);
    }
}

fn close(shared: &Shared, wait: bool) {
    shared.closed.store(true, Ordering::Relaxed);
    shared.wake.notify_one();
    if wait {
        let (lock, cv) = &shared.done;
        let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Writes every open access log's lines out and waits (at exit).
pub fn close_all() {
    for shared in live() {
        close(&shared, true);
    }
}

enum Output {
    File(File),
    Stdout,
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output, String> {
        match path {
            None => Ok(Output::Stdout),
            Some(p) => OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .map(Output::File)
                .map_err(|e| format!("cannot open the access log {}: {e}", p.display())),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::File(f) => f.write_all(bytes),
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
        }
    }
}

/// The writer thread: takes the whole buffer at once, writes it outside
/// the lock, reopens when asked, ends once closed and drained.
fn write_out(shared: &Shared, mut out: Output, path: Option<PathBuf>) {
    let mut batch = Vec::with_capacity(4096);
    loop {
        {
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            while pending.is_empty() && !shared.closed.load(Ordering::Relaxed) && !shared.reopen.load(Ordering::Relaxed)
            {
                pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::swap(&mut *pending, &mut batch);
        }
        if !batch.is_empty() {
            if let Err(e) = out.write_all(&batch) {
                tracing::warn!(error = %e, lines = bytecount(&batch), "access log lines lost");
            }
            batch.clear();
        }
        if shared.reopen.swap(false, Ordering::Relaxed) {
            match Output::open(path.as_deref()) {
                Ok(o) => out = o,
                Err(e) => tracing::warn!(error = %e, "the access log was not reopened; writing on to the old file"),
            }
        }
        if shared.closed.load(Ordering::Relaxed) && shared.pending.lock().map(|p| p.is_empty()).unwrap_or(true) {
            break;
        }
    }
    let (lock, cv) = &shared.done;
    *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
    cv.notify_all();
}

fn bytecount(batch: &[u8]) -> usize {
    batch.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bext_plugin_abi::units::ByteSize;

    fn config(path: &Path, buffer: u64) -> AccessLogConfig {
        AccessLogConfig {
            format: AccessLogFormat::Json,
            path: Some(path.to_owned()),
            buffer: ByteSize(buffer),
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        // No writer thread: nothing drains the buffer.
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AccessLog {
            shared: Arc::new(Shared {
                pending: Mutex::new(Vec::new()),
                wake: Condvar::new(),
                limit: 1024,
                dropped: dropped.clone(),
                reopen: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                done: (Mutex::new(true), Condvar::new()),
            }),
            config: config(Path::new("/nonexistent"), 1024),
        };
        let line = [&[b'x'; 99][..], b"\n"].concat();
        for _ in 0..15 {
            log.push(&line);
        }
        assert_eq!(log.shared.pending.lock().unwrap().len(), 1000, "ten whole lines fit");
        assert_eq!(dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn lines_are_written_in_order_and_reopen_follows_a_renamed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AccessLog::open(&config(&path, 1 << 20), dropped.clone()).unwrap();
        log.push(b"one\n");
        log.push(b"two\n");
        // Wait until written, then rotate the way logrotate does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap_or_default() != "one\ntwo\n" {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        reopen_all();
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "not reopened");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        log.push(b"three\n");
        log.close();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }
}
