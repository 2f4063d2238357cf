//! `bext check`, `bext run` and `bext plugins`.

use crate::support::*;

#[test]
fn check_accepts_a_good_platform() {
    let s = Site::new();
    s.write("www/index.html", "x");
    let cfg = s.platform("[apps.www]\nsource = \"www\"\ndomains = [\"a.test\"]\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 1 app(s)"));
}

/// A bundle's bext.config.toml given to `--config`, or its folder given
/// to `bext check DIR`, is checked as `bext run DIR` serves it (it is not
/// a platform file, and `unknown field server` told the user nothing); a
/// platform file with a bundle's `[server]` says which file it looks like.
#[test]
fn check_takes_a_bundle_s_config_as_bext_run_serves_its_folder() {
    let s = Site::new();
    s.write("app/index.html", "x");
    let cfg = s.write("app/bext.config.toml", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let dir = s.path("app");
    for args in [
        vec!["check", "--config", cfg.to_str().unwrap()],
        vec!["check", dir.to_str().unwrap()],
        vec!["check", "--config", dir.to_str().unwrap()],
    ] {
        let out = bext_output(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("checked as `bext run` serves it"), "{args:?}: {err}");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 1 app(s)"));
    }
    // Its mistakes are the bundle file's, by line and field.
    s.write("app/bext.config.toml", "[server]\nlisten = 3\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bext.config.toml:2:10: server.listen"), "{err}");
    // The same sections in a platform file: named as a bundle's.
    let platform = s.platform("[server]\nlisten = \"127.0.0.1:0\"\n");
    let out = bext_output(&["check", "--config", platform.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("platform.toml:1:2: server: `[server]` is a section of a bundle's bext.config.toml")
            && err.contains("`bext check DIR`")
            && err.contains("`bext run DIR`"),
        "{err}"
    );
}

#[test]
fn check_reports_every_error_with_file_line_and_field() {
    let s = Site::new();
    s.write("www/index.html", "x");
    s.write(
        "manifests/vhosts.yaml",
        "name: vhosts\npriority: 5\nconfig:\n  hosts:\n    \"a.test\": { app: www, pathPrefx: /a }\n",
    );
    s.write("manifests/typo.yaml", "name: vhostz\n");
    s.write(
        "manifests/extra.yaml",
        "name: vhosts-extra\nenabeld: true\npriorty: 3\n",
    );
    let cfg = s.platform(
        "[platform]\nmanifests = \"manifests\"\n[apps.www]\nsource = \"www\"\ndomains = [\"dup.test\"]\n[apps.other]\nsource = \"www\"\ndomains = [\"dup.test\"]\n[apps.gone]\nsource = \"nope\"\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "vhosts.yaml:5:27: config.hosts.a.test.pathPrefx: unknown field `pathPrefx`",
        "typo.yaml:1:1: name: unknown plugin `vhostz`",
        "extra.yaml:2:1: enabeld: unknown field `enabeld`",
        "extra.yaml:3:1: priorty: unknown field `priorty`",
        "apps.gone.source",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }

    // Two apps claiming one exact domain: the error names both.
    s.write("manifests/vhosts.yaml", "name: vhosts\n");
    std::fs::remove_file(s.path("manifests/typo.yaml")).unwrap();
    std::fs::remove_file(s.path("manifests/extra.yaml")).unwrap();
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dup.test") && err.contains("`other`") && err.contains("`www`"),
        "{err}"
    );
}

#[test]
fn check_reports_every_platform_error_at_its_line_and_field() {
    let s = Site::new();
    s.write("www/index.html", "x");
    // A type error and an unknown key in one app, a missing folder in
    // another, bad domains (one a URL, told its bare host) and an unknown
    // key in a third: all six, each at its value, and the bad domains
    // blamed on the platform file, not on the vhosts manifest.
    let cfg = s.platform(
        "[apps.shop]\nsource = \"www\"\nrate_limit = { rpm = \"many\" }\ncolour = 1\n[apps.blog]\nsource = \"missing\"\n\n[apps.www]\nsource = \"www\"\ndomains = [\"ok.test\", \"bad domain.test\", \"http://a.test:8080/\"]\nshade = 2\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "platform.toml:3:22: apps.shop.rate_limit.rpm: invalid type: string \"many\", expected u32",
        "platform.toml:4:1: apps.shop.colour: unknown field `colour`",
        "platform.toml:6:10: apps.blog.source: ",
        "platform.toml:10:23: apps.www.domains[1]: `bad domain.test`: not a valid host name",
        "apps.www.domains[2]: `http://a.test:8080/`: a domain is a bare host, without scheme, path or port: write \"a.test\"",
        "platform.toml:11:1: apps.www.shade: unknown field `shade`",
        "6 error(s)",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    assert!(!err.contains("vhosts"), "{err}");

    // A syntax error: its line and column, and the field of its line.
    s.platform("[platform]\nworkers = 3x\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("platform.toml:2:11: platform.workers: "), "{err}");
}

#[test]
fn a_yaml_platform_file_works_like_toml() {
    let s = Site::new();
    s.write("www/index.html", "x");
    let cfg = s.write(
        "platform.yaml",
        "platform:\n  listen: 127.0.0.1:0\napps:\n  www:\n    source: www\n    domainz: [a.test]\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("platform.yaml:6:5: apps.www.domainz: unknown field `domainz`"),
        "{err}"
    );
}

#[tokio::test]
async fn run_serves_a_directory_and_reads_its_config() {
    let s = Site::new();
    s.write("public/index.html", "from public");
    s.write(
        "bext.config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nstatic_dir = \"public\"\n",
    );
    let b = Bext::start(&["run", s.dir.path().to_str().unwrap()]);
    assert_eq!(get(b.addr, "anything.test", "/").await.text(), "from public");

    let s2 = Site::new();
    s2.write("index.html", "plain dir");
    let b2 = Bext::start(&["run", s2.dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(get(b2.addr, "x", "/").await.text(), "plain dir");
}

/// `listen` on port 443 is plain HTTP there, where clients speak TLS:
/// `bext check` and the load `bext serve` does warn, naming the key and
/// where HTTPS is served; another port says nothing.
#[test]
fn plain_http_on_port_443_is_warned_of_by_check_and_serve() {
    let s = Site::new();
    s.write("www/index.html", "x");
    let says =
        "platform.listen: `0.0.0.0:443` serves plain HTTP on port 443, where clients speak TLS: no TLS is configured";
    let cfg = s.platform("[platform]\nlisten = \"0.0.0.0:443\"\n[apps.www]\nsource = \"www\"\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains(says) && err.contains("listen_tls"),
        "{err}"
    );
    // Serve warns at load, before it binds: an unknown plugin stops it
    // right after, so the test never takes port 443.
    let cfg = s.platform(
        "[platform]\nlisten = \"0.0.0.0:443\"\n[apps.www]\nsource = \"www\"\n[apps.www.plugins.nope]\nenabled = true\n",
    );
    let out = bext_output(&["serve", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("WARN") && err.contains(says), "{err}");
    // Any other port: no warning.
    let cfg = s.platform("[platform]\nlisten = \"127.0.0.1:8080\"\n[apps.www]\nsource = \"www\"\n");
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("port 443"), "{err}");
}

/// A plugin's config error names the key the user wrote, at its line:
/// `auth`/`cache`/`rate_limit` of an app (not the authn/isr/gateway
/// config bext made of them),
/// a Buntime manifest's top-level `hosts` (not `config.hosts`); an app's
/// own `plugins.<name>.config` keeps its path, now with a line too.
#[test]
fn plugin_config_errors_name_the_field_as_written() {
    let s = Site::new();
    s.write("www/index.html", "x");
    s.write(
        "manifests/vhosts.yaml",
        "name: \"@buntime/plugin-vhosts\"\nhosts:\n  \"sked.ly\":\n    app: 5\n",
    );
    let cfg = s.platform(
        "[platform]\nmanifests = \"manifests\"\n[apps.www]\nsource = \"www\"\nauth = { nope = 1 }\ncache = { rules = [{ path = \"/x\", bogus = 1 }] }\n[apps.two]\nsource = \"www\"\n[apps.two.plugins.compress]\nenabled = true\nconfig = { levels = 3 }\n[apps.three]\nsource = \"www\"\nrate_limit = { rpm = 0 }\n",
    );
    let out = bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for want in [
        "vhosts.yaml:4:5: hosts.sked.ly.app: invalid type",
        "platform.toml:5:17: apps.www.auth.nope: unknown field `nope`",
        "platform.toml:6:43: apps.www.cache.rules[0].bogus: unknown field `bogus`",
        "platform.toml:11:21: apps.two.plugins.compress.config.levels:",
        "platform.toml:14:22: apps.three.rate_limit.rpm: must be at least 1",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    for internal in ["config.hosts", "plugins.authn", "plugins.isr", "app_limit"] {
        assert!(!err.contains(internal), "`{internal}` in:\n{err}");
    }
}

#[test]
fn plugins_lists_the_built_ins() {
    let out = bext_output(&["plugins"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("vhosts"));
}

#[test]
fn check_refuses_a_fail_open_waf_and_warns_when_host_routing_is_off() {
    let s = Site::new();
    s.write("www/index.html", "x");
    s.write("manifests/waf.yaml", "name: waf\nenabled: true\non_error: open\n");
    s.write("manifests/vhosts.yaml", "name: vhosts\nenabled: false\n");
    let cfg =
        s.platform("[platform]\nmanifests = \"manifests\"\n[apps.www]\nsource = \"www\"\ndomains = [\"a.test\"]\n");
    let check = || bext_output(&["check", "--config", cfg.to_str().unwrap()]);
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("manifests/waf.yaml:3:1: on_error: `waf` must fail closed"),
        "{err}"
    );
    let warning = "manifests/vhosts.yaml:2:1: enabled: vhosts is off, so host routing is off";
    assert!(
        err.contains(&format!("warning: {}", s.path(warning).display())),
        "{err}"
    );

    // A WAF that fails closed passes; host routing off is still said.
    s.write("manifests/waf.yaml", "name: waf\nenabled: true\n");
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(warning), "{err}");

    // An app that turns vhosts on routes by host again: no warning.
    s.platform("[platform]\nmanifests = \"manifests\"\n[apps.www]\nsource = \"www\"\ndomains = [\"a.test\"]\n[apps.www.plugins.vhosts]\nenabled = true\n");
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("warning"), "{err}");
}

#[test]
fn run_blames_its_config_file_lines_and_the_listen_flag() {
    let s = Site::new();
    s.write(
        "bext.config.toml",
        "[server]\nlisten = \"nope\"\nstatic_dir = \"missing\"\n",
    );
    let dir = s.dir.path().to_str().unwrap();
    let out = bext_output(&["run", dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "bext.config.toml:2:10: server.listen: `nope` is not an address",
        "bext.config.toml:3:14: server.static_dir: ",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    let out = bext_output(&["run", dir, "--listen", "bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen: `bad` is not an address"), "{err}");
    assert!(!err.contains("server.listen"), "{err}");
}
