//! An app's output: each line of its instances' stdout and stderr goes to
//! bext's log with `[app/instance]` in front, and the last lines are kept
//! for `/__bext/api/platform/apps/<id>/logs`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Lines kept per app for the logs endpoint.
pub const KEPT_LINES: usize = 500;

/// Longest line kept whole; a longer one is cut into pieces this long, so
/// an app printing without newlines cannot grow bext's memory.
const MAX_LINE: u64 = 4096;

/// The last [`KEPT_LINES`] lines of an app, oldest first.
#[derive(Default)]
pub(super) struct LogRing {
    lines: Mutex<VecDeque<String>>,
}

impl LogRing {
    /// Logs `line` of instance `index` and keeps it.
    pub(super) fn line(&self, app: &str, index: usize, line: &str) {
        tracing::info!(target: "bext::app", "[{app}/{index}] {line}");
        self.keep(format!("[{app}/{index}] {line}"));
    }

    /// Keeps what bext itself says about an instance (started, exited,
    /// given up), already logged by the caller.
    pub(super) fn event(&self, app: &str, index: usize, what: &str) {
        self.keep(format!("[{app}/{index}] bext: {what}"));
    }

    /// Keeps what bext says about the whole app (how its limits apply),
    /// already logged by the caller.
    pub(super) fn app_event(&self, app: &str, what: &str) {
        self.keep(format!("[{app}] bext: {what}"));
    }

    fn keep(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub(super) fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
    }
}

/// Copies `stream` (an instance's stdout or stderr) into `ring` line by
/// line until it closes.
pub(super) async fn pump(
    stream: impl AsyncRead + Unpin,
    ring: std::sync::Arc<LogRing>,
    app: std::sync::Arc<str>,
    index: usize,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                // An app's escape sequences must not reach an operator's
                // terminal through bext's log.
                let line: String = text
                    .trim_end_matches(['\n', '\r'])
                    .chars()
                    .map(|c| if hides_or_breaks(c) { '\u{fffd}' } else { c })
                    .collect();
                ring.line(&app, index, &line);
            }
        }
    }
}

/// Characters an app's output must not put in bext's log: controls
/// (escape sequences), line and paragraph separators (a new line to some
/// log viewers) and the invisible format characters (bidi overrides that
/// reorder what an operator reads, zero-width ones, tags).
fn hides_or_breaks(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_prefixed_cut_and_only_the_last_kept() {
        let ring = std::sync::Arc::new(LogRing::default());
        let mut input = "one\r\ntwo\x1b[2J\u{2028}\u{202e}rev\u{200b}\n".as_bytes().to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE as usize + 10));
        pump(&input[..], ring.clone(), "web".into(), 1).await;
        let lines = ring.last(10);
        assert_eq!(
            lines[..2],
            ["[web/1] one", "[web/1] two\u{fffd}[2J\u{fffd}\u{fffd}rev\u{fffd}"]
        );
        assert_eq!(lines[2].len(), "[web/1] ".len() + MAX_LINE as usize);
        assert_eq!(lines[3], format!("[web/1] {}", "x".repeat(10)));
        for i in 0..KEPT_LINES {
            ring.event("web", 0, &i.to_string());
        }
        let last = ring.last(usize::MAX);
        assert_eq!(last.len(), KEPT_LINES);
        assert_eq!(last[KEPT_LINES - 1], format!("[web/0] bext: {}", KEPT_LINES - 1));
        assert_eq!(ring.last(1).len(), 1);
    }
}
