//! Whether an instance takes requests: its port accepts a connection, or,
//! with `ready.path`, a `GET` of that path answers below 500.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One look at the instance on `port`.
pub(super) async fn probe(port: u16, path: Option<&str>) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, answer(port, path))
        .await
        .unwrap_or(false)
}

async fn answer(port: u16, path: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let ask =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bext-ready\r\nConnection: close\r\n\r\n");
    if stream.write_all(ask.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    status(&head[..got]).is_some_and(|s| (100..500).contains(&s))
}

/// The status of a response's first bytes (`HTTP/1.1 200 OK`).
fn status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Probes until the instance answers (`true`) or `limit` passes.
pub(super) async fn wait(port: u16, path: Option<&str>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(20);
    while tokio::time::Instant::now() < deadline {
        if probe(port, path).await {
            return true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
    false
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
        let (ok, ()) = tokio::join!(probe(port, Some("/health")), serve("204 No Content"));
        assert!(ok);
        let (ok, ()) = tokio::join!(probe(port, Some("/health")), serve("502 Bad Gateway"));
        assert!(!ok);
        drop(l);
        assert!(!probe(port, None).await);
    }
}
