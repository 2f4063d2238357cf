//! Which HTTP a connection speaks, and hyper's connection for it. Over
//! TLS, ALPN settled it (`h2`, else HTTP/1.1: RFC 9113 §3.2 allows h2 over
//! TLS only by ALPN); on plain TCP, the first bytes tell an HTTP/2 preface
//! (h2c with prior knowledge) from HTTP/1.1, and are replayed to hyper.
//!
//! hyper-util's `auto` connection did the same, but every connection's
//! task then had room for both protocols' states inline (1.5 KB where an
//! HTTP/1.1 one needs 0.6), and it sniffed even when ALPN had decided.
//! Here each protocol's state is boxed on its own, and only when that
//! protocol is spoken.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::config::platform::Limits;

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// The bytes read to tell the protocol, handed to hyper before the
/// socket's (at most the preface's 24, kept inline: no allocation).
#[derive(Debug, Default)]
pub(super) struct Replay {
    bytes: [u8; PREFACE.len()],
    start: u8,
    end: u8,
}

impl Replay {
    /// What is left to replay.
    pub(super) fn pending(&self) -> &[u8] {
        &self.bytes[self.start as usize..self.end as usize]
    }

    /// Copies what is left into `buf`; `false` when nothing was.
    pub(super) fn read_into(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let left = &self.bytes[self.start as usize..self.end as usize];
        let n = left.len().min(buf.remaining());
        if n == 0 {
            return false;
        }
        buf.put_slice(&left[..n]);
        self.start += n as u8;
        true
    }
}

impl Protocol {
    /// What ALPN settled on a TLS connection.
    pub(super) fn by_alpn(alpn: Option<&[u8]>) -> Protocol {
        match alpn {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }

    /// What a plain connection's first bytes say: read until they differ
    /// from the preface, complete it, or end (a closed or failing
    /// connection is HTTP/1.1: hyper then sees the end). The caller bounds
    /// the wait.
    pub(super) async fn sniff<S: AsyncRead + Unpin>(stream: &mut S) -> (Protocol, Replay) {
        let mut replay = Replay::default();
        loop {
            let end = replay.end as usize;
            match stream.read(&mut replay.bytes[end..]).await {
                Ok(0) | Err(_) => return (Protocol::Http1, replay),
                Ok(n) => replay.end += n as u8,
            }
            let got = &replay.bytes[..replay.end as usize];
            if got != &PREFACE[..got.len()] {
                return (Protocol::Http1, replay);
            }
            if got.len() == PREFACE.len() {
                return (Protocol::Http2, replay);
            }
        }
    }
}

/// What hyper asks of a service on either protocol, named once.
pub(super) trait Service:
    hyper::service::HttpService<
        hyper::body::Incoming,
        Future: Send + 'static,
        ResBody: Send + 'static + hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>,
    >
{
}

impl<S> Service for S where
    S: hyper::service::HttpService<
            hyper::body::Incoming,
            Future: Send + 'static,
            ResBody: Send
                         + 'static
                         + hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>,
        >
{
}

/// hyper's connection builders with bext's limits applied.
pub(super) struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    /// Both builders, configured once per listener.
    pub(super) fn new(limits: &Limits) -> Builders {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            // bext times request heads itself (see `Activity`), so that idle
            // keep-alive connections follow `idle_timeout` instead.
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes as usize)
            .keep_alive(true)
            .writev(false);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes.min(u32::MAX as u64) as u32)
            .max_concurrent_streams(limits.max_concurrent_streams)
            // WebSocket over HTTP/2 (RFC 8441), for proxy apps.
            .enable_connect_protocol()
            // Pings find dead peers of connections with requests in
            // flight; idle ones are not pinged (as nginx does not) and
            // `idle_timeout` closes them, so that they hold no timer.
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(false);
        Builders { http1, http2 }
    }

    /// hyper serving `io` in `protocol` with `service` (HTTP/1.1 with
    /// upgrades, for WebSocket tunnels).
    pub(super) fn serve<IO, S>(&self, protocol: Protocol, io: IO, service: S) -> Connection<IO, S>
    where
        IO: Read + Write + Unpin + Send + 'static,
        S: Service,
    {
        match protocol {
            Protocol::Http1 => Connection::Http1(Box::pin(self.http1.serve_connection(io, service).with_upgrades())),
            Protocol::Http2 => Connection::Http2(Box::pin(self.http2.serve_connection(io, service))),
        }
    }
}

/// One connection served by hyper, in its protocol. Boxed either way: a
/// connection's task is as large as its largest path, and most plain
/// HTTP/1.1 connections never come here (bext's fast path,
/// kernel/src/server/h1/, serves them); held inline, hyper's state would
/// make every task, HTTP/2 and fast-path ones too, that much bigger.
pub(super) enum Connection<IO, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
{
    Http1(Pin<Box<http1::UpgradeableConnection<IO, S>>>),
    Http2(Pin<Box<http2::Connection<IO, S, TokioExecutor>>>),
}

impl<IO, S> Connection<IO, S>
where
    IO: Read + Write + Unpin + Send + 'static,
    S: Service,
{
    /// Finishes the requests in flight, then closes (HTTP/2 sends GOAWAY).
    pub(super) fn graceful_shutdown(&mut self) {
        match self {
            Connection::Http1(conn) => conn.as_mut().graceful_shutdown(),
            Connection::Http2(conn) => conn.as_mut().graceful_shutdown(),
        }
    }

    /// Closes a connection with nothing in flight at `idle_timeout`, as
    /// nginx does at `keepalive_timeout`: HTTP/2 sends one GOAWAY naming
    /// the last stream served and closes, without the PING round trip of
    /// [`Connection::graceful_shutdown`], which a client that never
    /// answers PINGs would stretch to the connection loop's backstop
    /// (vendor/h2/BEXT-PATCH.md).
    pub(super) fn idle_shutdown(&mut self) {
        match self {
            Connection::Http1(conn) => conn.as_mut().graceful_shutdown(),
            Connection::Http2(conn) => conn.as_mut().idle_shutdown(),
        }
    }
}

impl<IO, S> Future for Connection<IO, S>
where
    IO: Read + Write + Unpin + Send + 'static,
    S: Service,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Connection::Http1(conn) => conn.as_mut().poll(cx),
            Connection::Http2(conn) => conn.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::*;

    #[test]
    fn alpn_decides_over_tls() {
        assert_eq!(Protocol::by_alpn(Some(b"h2")), Protocol::Http2);
        for other in [Some(&b"http/1.1"[..]), None, Some(b"h2c"), Some(b"H2")] {
            assert_eq!(Protocol::by_alpn(other), Protocol::Http1, "{other:?}");
        }
    }

    #[tokio::test]
    async fn the_first_bytes_tell_h2c_from_http1_and_are_replayed() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (parts, want) in [
            (vec![&PREFACE[..]], Protocol::Http2),
            (vec![&PREFACE[..5], &PREFACE[5..]], Protocol::Http2),
            (vec![&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]], Protocol::Http1),
            (vec![&b"PRI * HTTP/1.1\r\n\r\n"[..]], Protocol::Http1),
            (vec![&b"PRI"[..], &b"X"[..]], Protocol::Http1),
            // Part of the preface, then the end: decided at once.
            (vec![&b"PRI"[..]], Protocol::Http1),
            (vec![], Protocol::Http1),
        ] {
            let sent: Vec<u8> = parts.concat();
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let writer = tokio::spawn(async move {
                for part in parts {
                    client.write_all(part).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                client.shutdown().await.unwrap();
                client
            });
            let (got, mut replay) = tokio::time::timeout(Duration::from_secs(5), Protocol::sniff(&mut server))
                .await
                .expect("decided without waiting for more than the client sends");
            drop(writer.await.unwrap());
            assert_eq!(got, want, "{sent:?}");
            // What was read, then the rest from the socket: all of it.
            let mut seen = [0u8; 64];
            let mut buf = ReadBuf::new(&mut seen);
            while replay.read_into(&mut buf) {}
            let replayed = buf.filled().len();
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert_eq!([&seen[..replayed], &rest[..]].concat(), sent);
        }
    }
}
