//! Gets one certificate from an ACME server by HTTP-01 and prints where
//! it is stored: the crate end to end, without the kernel.
//!
//! ```sh
//! cargo run -p bext-acme --example issue -- \
//!     --directory https://127.0.0.1:14000/dir --ca-root pebble-root.pem \
//!     --http-port 5002 --storage /tmp/acme-demo  demo.bext.test www.demo.bext.test
//! ```
//!
//! It answers HTTP-01 on 127.0.0.1:`--http-port` (pebble's `httpPort`; 80
//! for a real CA). A second run prints the stored certificate without
//! ordering. `docs/acme.md` shows the pebble to run it against.

use std::convert::Infallible;
use std::path::PathBuf;

use bext_acme::{AcmeConfig, Manager};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut directory, mut ca_root, mut port, mut storage, mut names) = (None, None, 80u16, None, Vec::new());
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--directory" => directory = Some(value()?),
            "--ca-root" => ca_root = Some(PathBuf::from(value()?)),
            "--http-port" => port = value()?.parse()?,
            "--storage" => storage = Some(PathBuf::from(value()?)),
            name => names.push(name.to_owned()),
        }
    }
    let (Some(directory), Some(storage), false) = (directory, storage, names.is_empty()) else {
        return Err("usage: issue --directory URL [--ca-root PEM] [--http-port N] --storage DIR NAME...".into());
    };
    let mut config = AcmeConfig::new(directory);
    config.ca_root = ca_root;
    let manager = Manager::new(config, &storage)?;

    let challenges = manager.challenges();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let challenges = challenges.clone();
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let answer = challenges.http01_for_path(req.uri().path());
                async move {
                    Ok::<_, Infallible>(match answer {
                        Some(key_authorization) => Response::new(Full::new(Bytes::from(key_authorization.to_string()))),
                        None => Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                    })
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });

    let cert = manager.certificate(&names).await?;
    let days = |t: std::time::SystemTime| {
        t.duration_since(std::time::SystemTime::now())
            .map(|d| d.as_secs() / 86400)
            .unwrap_or(0)
    };
    println!("names:   {}", cert.names.join(", "));
    println!("serial:  {}", cert.serial());
    println!("expires: in {} days", days(cert.not_after));
    println!("stored:  {}", manager.storage().certificate_dir(&cert.names).display());
    Ok(())
}
