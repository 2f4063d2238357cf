//! The few helpers the prelude cannot write in JavaScript, or should not:
//! UTF-8, WHATWG URL parsing (the `url` crate), form encoding, randomness,
//! a monotonic clock and logging.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use rquickjs::{Ctx, Function, Object, Result, TypedArray, Value};

/// Builds the `native` object handed to the prelude.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    log_name: Rc<str>,
    clock: Instant,
    timers_armed: Rc<Cell<bool>>,
) -> Result<Object<'js>> {
    let native = Object::new(ctx.clone())?;
    // Whether any timer is pending, so the host asks JS for the next one
    // only when there is one.
    native.set(
        "timersArmed",
        Function::new(ctx.clone(), move |armed: bool| timers_armed.set(armed))?,
    )?;

    native.set(
        "log",
        Function::new(ctx.clone(), move |level: i32, message: String| match level {
            0 => tracing::trace!(target: "bext::js", source = %log_name, "{message}"),
            1 => tracing::debug!(target: "bext::js", source = %log_name, "{message}"),
            2 => tracing::info!(target: "bext::js", source = %log_name, "{message}"),
            3 => tracing::warn!(target: "bext::js", source = %log_name, "{message}"),
            _ => tracing::error!(target: "bext::js", source = %log_name, "{message}"),
        })?,
    )?;
    native.set(
        "now",
        Function::new(ctx.clone(), move || clock.elapsed().as_secs_f64() * 1000.0)?,
    )?;
    native.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, s: rquickjs::String<'js>| {
            TypedArray::<u8>::new(ctx, s.to_string()?.into_bytes())
        })?,
    )?;
    native.set(
        "utf8Decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, bytes: TypedArray<'js, u8>, fatal: bool, ignore_bom: bool| -> Result<String> {
                let bytes = copy_bytes(&bytes);
                let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
                    Some(rest) if !ignore_bom => rest,
                    _ => &bytes[..],
                };
                match std::str::from_utf8(bytes) {
                    Ok(s) => Ok(s.to_owned()),
                    Err(_) if fatal => Err(rquickjs::Exception::throw_type(
                        &ctx,
                        "The encoded data was not valid UTF-8",
                    )),
                    Err(_) => Ok(String::from_utf8_lossy(bytes).into_owned()),
                }
            },
        )?,
    )?;
    native.set(
        "randomBytes",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, n: usize| {
            let mut buf = vec![0u8; n.min(65536)];
            getrandom::fill(&mut buf).map_err(|e| rquickjs::Exception::throw_internal(&ctx, &e.to_string()))?;
            TypedArray::<u8>::new(ctx, buf)
        })?,
    )?;
    native.set(
        "urlParse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, input: String, base: Option<String>| -> Result<Value<'js>> {
                let parsed = match base {
                    Some(base) => url::Url::parse(&base).and_then(|b| b.join(&input)),
                    None => url::Url::parse(&input),
                };
                match parsed {
                    Ok(u) => url_parts(&ctx, &u),
                    Err(_) => Ok(Value::new_null(ctx)),
                }
            },
        )?,
    )?;
    native.set(
        "urlSet",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, href: String, part: String, value: String| -> Result<Value<'js>> {
                let Ok(mut u) = url::Url::parse(&href) else {
                    return Ok(Value::new_null(ctx));
                };
                use url::quirks;
                // Setters that refuse a value leave the URL as it was, as browsers do.
                let _: std::result::Result<(), ()> = match part.as_str() {
                    "href" => {
                        quirks::set_href(&mut u, &value)
                            .map_err(|_| rquickjs::Exception::throw_type(&ctx, &format!("Invalid URL: {value}")))?;
                        Ok(())
                    }
                    "protocol" => quirks::set_protocol(&mut u, &value),
                    "username" => quirks::set_username(&mut u, &value),
                    "password" => quirks::set_password(&mut u, &value),
                    "host" => quirks::set_host(&mut u, &value),
                    "hostname" => quirks::set_hostname(&mut u, &value),
                    "port" => quirks::set_port(&mut u, &value),
                    "pathname" => {
                        quirks::set_pathname(&mut u, &value);
                        Ok(())
                    }
                    "search" => {
                        quirks::set_search(&mut u, &value);
                        Ok(())
                    }
                    "hash" => {
                        quirks::set_hash(&mut u, &value);
                        Ok(())
                    }
                    _ => Ok(()),
                };
                url_parts(&ctx, &u)
            },
        )?,
    )?;
    native.set(
        "formParse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, query: String| -> Result<rquickjs::Array<'js>> {
                let out = rquickjs::Array::new(ctx)?;
                let mut i = 0;
                for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                    out.set(i, k.as_ref())?;
                    out.set(i + 1, v.as_ref())?;
                    i += 2;
                }
                Ok(out)
            },
        )?,
    )?;
    native.set(
        "formSerialize",
        Function::new(ctx.clone(), |flat: Vec<String>| {
            let mut out = url::form_urlencoded::Serializer::new(String::new());
            for pair in flat.chunks_exact(2) {
                out.append_pair(&pair[0], &pair[1]);
            }
            out.finish()
        })?,
    )?;
    Ok(native)
}

/// `[href, protocol, username, password, host, hostname, port, pathname, search, hash, origin]`.
fn url_parts<'js>(ctx: &Ctx<'js>, u: &url::Url) -> Result<Value<'js>> {
    use url::quirks;
    let parts = rquickjs::Array::new(ctx.clone())?;
    let values = [
        quirks::href(u),
        quirks::protocol(u),
        quirks::username(u),
        quirks::password(u),
        quirks::host(u),
        quirks::hostname(u),
        quirks::port(u),
        quirks::pathname(u),
        quirks::search(u),
        quirks::hash(u),
    ];
    for (i, v) in values.iter().enumerate() {
        parts.set(i, *v)?;
    }
    parts.set(values.len(), quirks::origin(u))?;
    Ok(parts.into_value())
}

/// Copies a typed array's bytes out of the engine.
#[allow(unsafe_code)]
pub(crate) fn copy_bytes(bytes: &TypedArray<'_, u8>) -> Vec<u8> {
    // SAFETY: the slice is copied before any JavaScript can run again, so
    // the engine cannot detach or resize the buffer while it is borrowed.
    unsafe { bytes.as_bytes() }.map(<[u8]>::to_vec).unwrap_or_default()
}
