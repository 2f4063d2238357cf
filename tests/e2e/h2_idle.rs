//! An idle HTTP/2 connection forgets its HPACK encoder table (vendor/h2/
//! BEXT-PATCH.md, issue 22): the first answer after the idle release must
//! begin its header block with dynamic table size updates (to 0, then back
//! to 4,096) so that the client's decoder empties its copy in step, and
//! every answer, before and after, must decode to what the server sent.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Past h2's release (2 s with no stream open) and bext's wake-up of an
/// idle connection (3 s after its last answer), which lets h2 see it.
const PAST_THE_RELEASE: Duration = Duration::from_millis(4500);

/// RFC 7541 §6.3: a size update to 0, then one to 4,096 (`001` and a 5-bit
/// prefix integer: 31, then 4,065 in two 7-bit groups).
const FORGET_AND_REOPEN: [u8; 4] = [0x20, 0x3f, 0xe1, 0x1f];

/// The answer's header block starts with a dynamic table size update.
fn starts_with_a_size_update(block: &[u8]) -> bool {
    block.first().is_some_and(|b| b & 0xe0 == 0x20)
}

/// A hand-written h2c client, to see the answers' header blocks as sent.
struct RawH2 {
    stream: TcpStream,
    next_stream: u32,
}

/// What came back for one request: the header block and the body's length.
struct Answer {
    block: Vec<u8>,
    body_len: usize,
}

impl RawH2 {
    async fn connect(addr: SocketAddr) -> RawH2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(4, 0, 0, &[])); // our SETTINGS: defaults
        stream.write_all(&hello).await.unwrap();
        RawH2 { stream, next_stream: 1 }
    }

    /// GET `path` (`:authority` x) on a new stream, and its answer.
    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, "x").await
    }

    /// `method` `path` on a new stream, and its answer.
    async fn send(&mut self, method: &str, path: &str, authority: &str) -> Answer {
        let id = self.next_stream;
        self.next_stream += 2;
        // :method GET (static 2) or a literal, :scheme http (static 6);
        // :path and :authority as literals without indexing (static
        // names 4 and 1).
        let mut block = match method {
            "GET" => vec![0x82],
            other => [&[0x02, other.len() as u8][..], other.as_bytes()].concat(),
        };
        block.extend([0x86, 0x04, path.len() as u8]);
        block.extend(path.as_bytes());
        block.extend([0x01, authority.len() as u8]);
        block.extend(authority.as_bytes());
        self.stream
            .write_all(&frame(1, 0x5, id, &block)) // END_STREAM | END_HEADERS
            .await
            .unwrap();
        let mut answer = Answer {
            block: vec![],
            body_len: 0,
        };
        loop {
            let (kind, flags, sid, payload) = self.read_frame().await;
            match kind {
                // The server's SETTINGS: acknowledged.
                4 if flags & 1 == 0 => self.stream.write_all(&frame(4, 1, 0, &[])).await.unwrap(),
                // HEADERS, CONTINUATION (bext pads nothing, sends no priority).
                1 | 9 if sid == id => answer.block.extend(payload),
                0 if sid == id => answer.body_len += payload.len(),
                _ => {}
            }
            if sid == id && matches!(kind, 0 | 1) && flags & 1 == 1 {
                return answer;
            }
        }
    }

    async fn read_frame(&mut self) -> (u8, u8, u32, Vec<u8>) {
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut head))
            .await
            .expect("a frame within 10 s")
            .expect("the connection stays open");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let sid = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.unwrap();
        (head[3], head[4], sid, payload)
    }
}

impl RawH2 {
    /// The next frame, or `None` once the server closed the connection.
    async fn next_frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        self.stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let sid = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], sid, payload))
    }
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// The header blocks as sent: the table in use (later answers refer to
/// it), forgotten with the two size updates once the connection idled,
/// then in use again.
#[tokio::test]
async fn an_idle_h2_connection_forgets_its_hpack_table_and_says_so() {
    let s = Site::new();
    let page = "p".repeat(1000);
    s.write("www/index.html", &page);
    let b = Bext::serve(
        &s.platform("[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n[apps.www]\nsource = \"www\"\n"),
    );
    let mut h2 = RawH2::connect(b.addr).await;

    let first = h2.get("/index.html").await;
    let second = h2.get("/index.html").await;
    assert_eq!((first.body_len, second.body_len), (1000, 1000));
    assert!(!starts_with_a_size_update(&first.block), "{:x?}", first.block);
    assert!(!starts_with_a_size_update(&second.block), "{:x?}", second.block);
    assert!(
        second.block.len() < first.block.len(),
        "the second answer refers to the table: {:x?} then {:x?}",
        first.block,
        second.block
    );

    // A machine too busy to wake the connection in time leaves the table
    // as it was: the answer then refers to it, and the next quiet period
    // gets another chance (a request starts the idle clock again).
    let mut after = None;
    for _ in 0..3 {
        tokio::time::sleep(PAST_THE_RELEASE).await;
        let answer = h2.get("/index.html").await;
        assert_eq!(answer.body_len, 1000);
        if answer.block.starts_with(&FORGET_AND_REOPEN) {
            after = Some(answer);
            break;
        }
        assert!(!starts_with_a_size_update(&answer.block), "{:x?}", answer.block);
    }
    let after = after.expect("after a quiet period, a block that empties the client's table (20 3f e1 1f)");
    assert!(
        after.block.len() - 4 > second.block.len(),
        "then its headers as literals again: {:x?}",
        after.block
    );

    let again = h2.get("/index.html").await;
    assert_eq!(again.body_len, 1000);
    assert!(!starts_with_a_size_update(&again.block), "{:x?}", again.block);
    assert!(
        again.block.len() < after.block.len() - 4,
        "the table is used again: {:x?}",
        again.block
    );
}

/// hyper's client (h2's decoder) reads every answer right across the
/// release: headers the table holds before it, new values and repeated ones
/// after it, enough of them that the table evicts entries on both sides.
#[tokio::test]
async fn answers_decode_the_same_across_the_hpack_table_release() {
    let echo = Echo::start().await;
    let s = Site::new();
    let b = Bext::serve(&shop_platform(&s, echo.addr));
    let (mut sender, _conn) = h2_client(b.addr).await;
    for round in 0..6 {
        echo_round(&mut sender, round % 3).await;
    }
    tokio::time::sleep(PAST_THE_RELEASE).await;
    for round in 0..6 {
        echo_round(&mut sender, 3 + round % 4).await;
    }
    // Back to values from before the release: the client must not find
    // them in its table any more (the server sends them anew).
    echo_round(&mut sender, 0).await;
    echo_round(&mut sender, 1).await;
}

/// One request through the echo upstream, which answers with `x-round`,
/// `x-same` and a ~1 KiB `x-fill` (four rounds fill the 4 KiB table, so
/// later ones evict earlier entries); the answer must carry them as set.
async fn echo_round(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    round: usize,
) {
    let fill = char::from(b'a' + (round % 26) as u8).to_string().repeat(900);
    let mut req = request("GET", "http://shop.test/echo", &[], Vec::new());
    for set in [
        format!("x-round={round}"),
        "x-same=same".to_owned(),
        format!("x-fill={fill}"),
    ] {
        req.headers_mut().append("x-echo-set", set.parse().unwrap());
    }
    let reply = collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
    assert_eq!(reply.header("x-round"), Some(round.to_string().as_str()));
    assert_eq!(reply.header("x-same"), Some("same"), "round {round}");
    assert_eq!(reply.header("x-fill"), Some(fill.as_str()), "round {round}");
    assert_eq!(reply.json()["uri"], "/echo");
}

/// At `idle_timeout` an idle HTTP/2 connection gets one GOAWAY naming the
/// last stream it served, then is closed: bext does not wait for the
/// client to answer a PING (h2's graceful shutdown), which this client
/// never does. The attack pass saw such a connection held 30 s past its
/// idle timeout (until `header_read_timeout`).
#[tokio::test]
async fn an_idle_h2_connection_closes_at_its_idle_timeout_without_a_ping_answer() {
    let s = Site::new();
    s.write("www/index.html", "hello");
    let b = Bext::serve(&s.platform(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndefault_app = \"www\"\n\
         [platform.limits]\nidle_timeout = \"1s\"\n[apps.www]\nsource = \"www\"\n",
    ));
    let mut h2 = RawH2::connect(b.addr).await;
    assert_eq!(h2.get("/index.html").await.body_len, 5);
    let served = tokio::time::Instant::now();
    // The idle timeout and generous slack for a loaded machine; far below
    // the 30 s of `header_read_timeout`.
    let bound = Duration::from_secs(10);
    let mut go_aways = vec![];
    loop {
        match tokio::time::timeout_at(served + bound, h2.next_frame()).await {
            Err(_) => panic!("still open {bound:?} after the last answer (idle_timeout 1s); GOAWAYs {go_aways:x?}"),
            Ok(None) => break,
            // GOAWAY: the last stream id and the error code.
            Ok(Some((7, _, 0, payload))) => go_aways.push((
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
                u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
            )),
            // PINGs (left unanswered), SETTINGS acknowledgements...
            Ok(Some(_)) => {}
        }
    }
    assert_eq!(go_aways, [(1, 0)], "one GOAWAY: stream 1 was the last, NO_ERROR");
}

/// A HEAD answer has no DATA frames (a client counts them against the
/// head's length: curl then fails the stream with a protocol error): a JS
/// app's in each isolate mode, and the kernel's own 404.
#[tokio::test]
async fn a_head_answer_sends_no_data() {
    let s = Site::new();
    s.write(
        "app/index.js",
        "export default { fetch() { return new Response('app'); } };\n",
    );
    let mut platform = String::from("[platform]\nlisten = \"127.0.0.1:0\"\nmanifests = \"manifests\"\n");
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    for mode in ["threads", "shared", "inline"] {
        platform.push_str(&format!(
            "[apps.{mode}]\nruntime = \"js\"\nsource = \"app\"\ndomains = [\"{mode}.test\"]\nisolate = {{ mode = \"{mode}\" }}\n"
        ));
    }
    let b = Bext::serve(&s.platform(&platform));
    let mut h2 = RawH2::connect(b.addr).await;
    for mode in ["threads", "shared", "inline"] {
        let get = h2.send("GET", "/", &format!("{mode}.test")).await;
        assert_eq!(get.body_len, 3, "{mode}");
        let head = h2.send("HEAD", "/", &format!("{mode}.test")).await;
        assert_eq!(head.body_len, 0, "{mode}: no DATA for a HEAD");
    }
    assert!(h2.send("GET", "/", "nobody.test").await.body_len > 0, "a 404 page");
    assert_eq!(
        h2.send("HEAD", "/", "nobody.test").await.body_len,
        0,
        "the 404's head only"
    );
}
