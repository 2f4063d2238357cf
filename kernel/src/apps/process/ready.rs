//! Whether an instance takes requests: its port (or socket) accepts a
//! connection, or, with `ready.path`, a `GET` of that path answers below
//! 500.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::Endpoint;

/// Longest one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why one look at an instance found it not ready: said in the log, the
/// logs endpoint and a deploy's error, so that a server that listens but
/// answers its check with a 500 is not told to listen on `$PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotReady {
    /// Nothing accepts on its port or socket.
    #[error("nothing accepts connections there yet")]
    NotListening,
    /// The check's `GET` got an answer of 500 or more.
    #[error("GET {path} answered {status} (the check wants a status below 500)")]
    Answered { path: String, status: u16 },
    /// The connection closed, or what came back was not an HTTP answer.
    #[error("GET {path} got no HTTP answer")]
    NoAnswer { path: String },
    /// No answer within the probe's time.
    #[error("GET {path} did not answer within {}s", PROBE_TIMEOUT.as_secs())]
    Slow { path: String },
}

/// One look at the instance on `at`.
pub(super) async fn probe(at: &Endpoint, path: Option<&str>) -> Result<(), NotReady> {
    tokio::time::timeout(PROBE_TIMEOUT, answer(at, path))
        .await
        .unwrap_or_else(|_| match path {
            Some(path) => Err(NotReady::Slow { path: path.into() }),
            None => Err(NotReady::NotListening),
        })
}

async fn answer(at: &Endpoint, path: Option<&str>) -> Result<(), NotReady> {
    match at {
        Endpoint::Port(port) => match TcpStream::connect(("127.0.0.1", *port)).await {
            Ok(stream) => ask(stream, &format!("127.0.0.1:{port}"), path).await,
            Err(_) => Err(NotReady::NotListening),
        },
        Endpoint::Socket(socket) => match UnixStream::connect(socket).await {
            Ok(stream) => ask(stream, "localhost", path).await,
            Err(_) => Err(NotReady::NotListening),
        },
    }
}

/// `GET path` on a connection made (nothing without a path: the
/// connection was the check).
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, host: &str, path: Option<&str>) -> Result<(), NotReady> {
    let Some(path) = path else {
        return Ok(());
    };
    let no_answer = || NotReady::NoAnswer { path: path.into() };
    let ask = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bext-ready\r\nConnection: close\r\n\r\n");
    if stream.write_all(ask.as_bytes()).await.is_err() {
        return Err(no_answer());
    }
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]).await {
            Ok(0) | Err(_) => return Err(no_answer()),
            Ok(n) => got += n,
        }
    }
    match status(&head[..got]) {
        Some(s) if (100..500).contains(&s) => Ok(()),
        Some(status) => Err(NotReady::Answered {
            path: path.into(),
            status,
        }),
        None => Err(no_answer()),
    }
}

/// The status of a response's first bytes (`HTTP/1.1 200 OK`).
fn status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Probes until the instance answers or `limit` passes; then says why
/// the last look found it not ready.
pub(super) async fn wait(at: &Endpoint, path: Option<&str>, limit: Duration) -> Result<(), NotReady> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(20);
    let mut last = NotReady::NotListening;
    while tokio::time::Instant::now() < deadline {
        match probe(at, path).await {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(status(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status(b"HTTP/1.1 2"), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_not_ready_and_an_answer_below_500_is() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let serve = |status: &'static str| {
            let l = &l;
            async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        };
        let at = Endpoint::Port(port);
        let (ok, ()) = tokio::join!(probe(&at, Some("/health")), serve("204 No Content"));
        assert_eq!(ok, Ok(()));
        let (refused, ()) = tokio::join!(probe(&at, Some("/health")), serve("502 Bad Gateway"));
        let refused = refused.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "GET /health answered 502 (the check wants a status below 500)"
        );
        drop(l);
        assert_eq!(probe(&at, None).await, Err(NotReady::NotListening));
    }

    #[tokio::test]
    async fn a_socket_is_ready_once_it_accepts_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let at = Endpoint::Socket(dir.path().join("0.sock"));
        assert_eq!(probe(&at, None).await, Err(NotReady::NotListening), "no socket yet");
        let Endpoint::Socket(path) = &at else { unreachable!() };
        let l = tokio::net::UnixListener::bind(path).unwrap();
        let serve = async {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /health HTTP/1.1\r\nHost: localhost\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        };
        let (ok, ()) = tokio::join!(probe(&at, Some("/health")), serve);
        assert_eq!(ok, Ok(()));
    }
}
