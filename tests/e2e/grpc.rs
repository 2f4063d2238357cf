//! gRPC through bext with a real framework on both ends: a Python
//! `grpcio` server (Debian's python3-grpcio, which tests/run installs)
//! behind a proxy app with `http2 = true`, and a `grpcio` client talking
//! to bext. Generic handlers and calls on raw bytes, so no protoc step:
//! a unary call with trailing metadata, a server-streaming call, and an
//! error status, each with its trailers (`grpc-status`, `grpc-message`)
//! intact through bext. The same server runs as a process app too.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use crate::support::*;

const SERVER: &str = r#"
import os
from concurrent import futures
import grpc

def say_hello(request, context):
    context.set_trailing_metadata((("x-served-by", "python-grpcio"),))
    return b"hello " + request

def count(request, context):
    for i in range(int(request)):
        yield str(i).encode()

def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")

handlers = grpc.method_handlers_generic_handler("test.Greeter", {
    "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handlers,))
port = server.add_insecure_port("127.0.0.1:" + os.environ.get("PORT", "0"))
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const CLIENT: &str = r#"
import sys
import grpc

target, authority = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
reply, call = channel.unary_unary("/test.Greeter/SayHello").with_call(b"bext", timeout=20)
print("unary", reply.decode(), dict(call.trailing_metadata()).get("x-served-by"), call.code().name)
stream = channel.unary_stream("/test.Greeter/Count")(b"5", timeout=20)
print("stream", ",".join(m.decode() for m in stream), stream.code().name)
try:
    channel.unary_unary("/test.Greeter/Fail")(b"", timeout=20)
    print("error none")
except grpc.RpcError as e:
    print("error", e.code().name, e.details())
"#;

/// A Python that imports `grpc`: Debian's `/usr/bin/python3` when another
/// `python3` (pyenv, a venv) comes first on `PATH` without it.
fn python_with_grpc() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import grpc"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("python3 with grpcio (Debian: python3-grpcio; tests/run installs it)")
}

/// The gRPC server, killed with the test.
struct GrpcServer {
    child: Child,
    port: u16,
}

impl GrpcServer {
    fn start(site: &Site) -> GrpcServer {
        let script = site.write("grpc/server.py", SERVER);
        let mut child = Command::new(python_with_grpc())
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the gRPC server: {line:?}"));
        GrpcServer { child, port }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the client saw through bext at `b` for `authority`, line by line.
async fn calls_through(b: Bext, site: &Site, authority: &'static str) -> Vec<String> {
    let client = site.write("grpc/client.py", CLIENT);
    let (out, b) = tokio::task::spawn_blocking(move || {
        let out = Command::new(python_with_grpc())
            .arg(client)
            .arg(b.addr.to_string())
            .arg(authority)
            .output()
            .unwrap();
        (out, b)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\nstderr: {stderr}\nbext: {}", b.log());
    stdout.lines().map(str::to_owned).collect()
}

/// What every call answers when it went through whole.
const EXPECTED: [&str; 3] = [
    "unary hello bext python-grpcio OK",
    "stream 0,1,2,3,4 OK",
    "error NOT_FOUND no such greeting",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_client_reaches_a_grpcio_server_through_bext_with_its_trailers() {
    let site = Site::new();
    let server = GrpcServer::start(&site);
    let cfg = site.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.greeter]
runtime = "proxy"
domains = ["grpc.test"]
upstream = "http://127.0.0.1:{}"
http2 = true
"#,
        server.port
    ));
    let b = Bext::serve(&cfg);
    assert_eq!(calls_through(b, &site, "grpc.test").await, EXPECTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_server_runs_as_a_process_app_with_http2() {
    let site = Site::new();
    site.write("grpc/server.py", SERVER);
    let cfg = site.platform(&format!(
        r#"
[platform]
listen = "127.0.0.1:0"

[apps.greeter]
runtime = "process"
source = "grpc"
command = ["{}", "server.py"]
instances = 2
http2 = true
stop_timeout = "5s"
domains = ["grpc.test"]
"#,
        python_with_grpc()
    ));
    let b = Bext::serve(&cfg);
    // The port opening is its readiness; wait until both instances listen.
    eventually(std::time::Duration::from_secs(30), || async {
        (b.log().matches("instance ready").count() >= 2).then_some(())
    })
    .await;
    assert_eq!(calls_through(b, &site, "grpc.test").await, EXPECTED);
}
