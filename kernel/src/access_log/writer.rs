//! The queue workers hand requests' records to, and the thread that
//! formats them and writes the lines to the file (or standard output).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::format::{Clock, Record};
use crate::config::platform::{AccessLogConfig, AccessLogFormat};

/// How long the thread gathers records after the first of a batch before
/// it writes them (nginx's `flush=`): one wake-up and one `write` per
/// batch, not per request, however slow the traffic.
const FLUSH: Duration = Duration::from_millis(100);

/// Written records kept for workers to fill again (each with its head's
/// buffer): a worker's record then costs no allocation, and the log's
/// thread no frees of memory another thread allocated.
const SPARES: usize = 256;

/// Spare records a worker thread holds, taken when it queues one.
const STASH: usize = 8;

thread_local! {
    /// Boxed on purpose: records move between threads as pointers.
    #[allow(clippy::vec_box)]
    static STASHED: RefCell<Vec<Box<Record>>> = const { RefCell::new(Vec::new()) };
}

/// A record for a request's line: a written one kept by this thread, or
/// a new one.
pub fn record() -> Box<Record> {
    STASHED.with_borrow_mut(Vec::pop).unwrap_or_else(Record::blank)
}

/// Keeps `record` (a spare, or a line a full buffer refused) for this
/// thread's next request, when it holds fewer than [`STASH`] (one thread
/// local access per request: a stash that is full, rare, frees it).
fn stash(record: Box<Record>) {
    STASHED.with_borrow_mut(|s| {
        if s.len() < STASH {
            s.push(record);
        }
    });
}

/// One dedicated access log: its queue and writer thread. Dropping it
/// lets the thread write what is left and end.
pub struct AccessLog {
    shared: Arc<Shared>,
    /// What it was made from, so a reload with the same setting keeps it.
    pub config: AccessLogConfig,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The bound on the memory the queued records hold (`buffer`).
    limit: usize,
    format: AccessLogFormat,
    dropped: Arc<AtomicU64>,
    reopen: AtomicBool,
    closed: AtomicBool,
    /// Set by the thread once it wrote everything and ended.
    done: (Mutex<bool>, Condvar),
}

#[derive(Default)]
struct Queue {
    /// Boxed on purpose: a worker builds the record when the response's
    /// head is answered and moves only a pointer in at the end.
    #[allow(clippy::vec_box)]
    records: Vec<Box<Record>>,
    /// What they hold ([`Record::size`]).
    held: usize,
    /// The thread sleeps until told: the first record of a batch tells it.
    idle: bool,
    /// Written records, cleared, for workers to fill again (at most
    /// [`SPARES`]).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Record>>,
}

/// Every open access log, for SIGUSR1 and the flush at exit.
static OPEN: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Reopens every access log's file (SIGUSR1, after logrotate moved it).
pub fn reopen_all() {
    for shared in live() {
        shared.reopen.store(true, Ordering::Relaxed);
        shared.tell();
    }
}

fn live() -> Vec<Arc<Shared>> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|w| w.strong_count() > 0);
    open.iter().filter_map(Weak::upgrade).collect()
}

impl Shared {
    fn new(limit: usize, format: AccessLogFormat, dropped: Arc<AtomicU64>) -> Shared {
        Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            limit,
            format,
            dropped,
            reopen: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            done: (Mutex::new(false), Condvar::new()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the thread for a flag it reads: taking the lock first means
    /// it is either before its check (and sees the flag) or waiting.
    fn tell(&self) {
        drop(self.queue());
        self.wake.notify_one();
    }

    /// Whether the thread should write now rather than gather more.
    fn urgent(&self, queue: &Queue) -> bool {
        queue.held >= self.limit / 2 || self.closed.load(Ordering::Relaxed) || self.reopen.load(Ordering::Relaxed)
    }
}

impl AccessLog {
    /// Opens the file (an error names it) and starts the writer thread;
    /// `dropped` counts the lines a full buffer refused.
    pub fn open(config: &AccessLogConfig, dropped: Arc<AtomicU64>) -> Result<AccessLog, String> {
        let out = Output::open(config.path.as_deref())?;
        let limit = usize::try_from(config.buffer.0).unwrap_or(usize::MAX);
        let shared = Arc::new(Shared::new(limit, config.format, dropped));
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

    /// Queues a request's record; never waits for the disk. A record that
    /// does not fit in the buffer is dropped and counted. Takes a spare
    /// record for this thread's next request, when there is one.
    pub fn push(&self, mut record: Box<Record>) {
        let size = record.size();
        let mut queue = self.shared.queue();
        if queue.held + size > self.shared.limit {
            drop(queue);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            record.clear();
            stash(record);
            return;
        }
        let spare = queue.spare.pop();
        let half = self.shared.limit / 2;
        let crossed_half = queue.held < half && queue.held + size >= half;
        queue.records.push(record);
        queue.held += size;
        // The first record of a batch wakes the sleeping thread; half the
        // buffer stops its gathering early.
        let tell = std::mem::take(&mut queue.idle) || crossed_half;
        drop(queue);
        if tell {
            self.shared.wake.notify_one();
        }
        if let Some(spare) = spare {
            stash(spare);
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
    shared.tell();
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

/// The writer thread: sleeps until a record comes, gathers for
/// [`FLUSH`] (less when the buffer fills, at once to close or reopen),
/// takes the batch, formats and writes it outside the lock; ends once
/// closed and drained.
fn write_out(shared: &Shared, mut out: Output, path: Option<PathBuf>) {
    let mut batch = Vec::new();
    // The last batch's records, cleared, handed back with the next take.
    let mut written: Vec<Box<Record>> = Vec::new();
    let mut text = Vec::with_capacity(4096);
    loop {
        {
            let mut queue = shared.queue();
            let room = SPARES.saturating_sub(queue.spare.len()).min(written.len());
            queue.spare.extend(written.drain(..room));
            while queue.records.is_empty() && !shared.urgent(&queue) {
                queue.idle = true;
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            queue.idle = false;
            if !shared.urgent(&queue) {
                queue = shared
                    .wake
                    .wait_timeout_while(queue, FLUSH, |q| !shared.urgent(q))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut queue.records, &mut batch);
            queue.held = 0;
        }
        // Spares beyond the bound, freed outside the lock.
        written.clear();
        if !batch.is_empty() {
            let clock = Clock::now();
            // By reference, then cleared in place for workers to fill
            // again: no move of each record out of the batch.
            for record in &mut batch {
                record.write(shared.format, &clock, &mut text);
                record.clear();
            }
            written.append(&mut batch);
            if let Err(e) = out.write_all(&text) {
                tracing::warn!(error = %e, lines = bytecount(&text), "access log lines lost");
            }
            text.clear();
        }
        if shared.reopen.swap(false, Ordering::Relaxed) {
            match Output::open(path.as_deref()) {
                Ok(o) => out = o,
                Err(e) => tracing::warn!(error = %e, "the access log was not reopened; writing on to the old file"),
            }
        }
        if shared.closed.load(Ordering::Relaxed) && shared.queue().records.is_empty() {
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

    fn record(request_id: u64) -> Box<Record> {
        let mut record = Record::blank();
        record.client = "127.0.0.1".parse().unwrap();
        record.status = 200;
        record.request_id = request_id;
        record.trace_id = crate::access_log::TraceId::Known([1; 16]);
        record
    }

    /// The request ids of the lines in `path`, once there are `n`.
    fn ids(path: &Path, n: usize) -> Vec<u64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let ids: Vec<u64> = text
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    u64::from_str_radix(v["request_id"].as_str().unwrap(), 16).unwrap()
                })
                .collect();
            if ids.len() >= n {
                return ids;
            }
            assert!(std::time::Instant::now() < deadline, "not written: {ids:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        // No writer thread: nothing drains the queue.
        let dropped = Arc::new(AtomicU64::new(0));
        let size = record(0).size();
        let limit = 10 * size + size / 2;
        let log = AccessLog {
            shared: Arc::new(Shared::new(limit, AccessLogFormat::Json, dropped.clone())),
            config: config(Path::new("/nonexistent"), limit as u64),
        };
        *log.shared.done.0.lock().unwrap() = true;
        for id in 0..15 {
            log.push(record(id));
        }
        assert_eq!(log.shared.queue().records.len(), 10, "ten whole records fit");
        assert_eq!(dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn written_records_come_back_cleared_to_the_workers_that_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&config(&path, 1 << 20), Arc::default()).unwrap();
        let mut first = record(1);
        first.host = Some("a.test".into());
        log.push(first);
        assert_eq!(ids(&path, 1), [1]);
        // Handed back with the thread's next take, then to a queuing thread.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        std::thread::spawn(move || {
            loop {
                log.push(record(2));
                if let Some(spare) = STASHED.with_borrow_mut(Vec::pop) {
                    assert!(spare.host.is_none(), "cleared");
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "no spare came back");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn lines_are_written_in_order_and_reopen_follows_a_renamed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let dropped = Arc::new(AtomicU64::new(0));
        let log = AccessLog::open(&config(&path, 1 << 20), dropped.clone()).unwrap();
        log.push(record(1));
        log.push(record(2));
        // Wait until written, then rotate the way logrotate does.
        assert_eq!(ids(&path, 2), [1, 2]);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        reopen_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(std::time::Instant::now() < deadline, "not reopened");
            std::thread::sleep(Duration::from_millis(10));
        }
        log.push(record(3));
        log.close();
        assert_eq!(ids(&rotated, 2), [1, 2]);
        assert_eq!(ids(&path, 1), [3], "written at close, without waiting to gather");
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }
}
