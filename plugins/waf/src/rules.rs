//! The signature rules: what each attack family looks like once a value
//! is canonical (decoded, lower-cased; see `normalize`).
//!
//! Every rule names its category, the parts of a request it applies to,
//! and trigger words. A rule's regex only runs on a value in which one of
//! its triggers occurs (one Aho-Corasick pass finds them all), so a benign
//! value costs a byte scan, not a hundred regexes. The rules are ours,
//! written against the attack families the OWASP CRS tests describe; the
//! corpus in `tests/waf-corpus` measures them.

use std::fmt;

use serde::Deserialize;

/// Attack families; each can be switched off per app (`rules:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal and access to OS or secret files.
    Lfi,
    /// Remote file inclusion.
    Rfi,
    /// Shell command injection, Unix and Windows.
    Rce,
    /// PHP code injection, wrappers, serialised objects, uploads.
    Php,
    /// Java: Log4Shell lookups, class names, deserialisation gadgets.
    Java,
    /// Node.js injection, prototype pollution, JS denial of service.
    Nodejs,
    /// Server-side request forgery to metadata and internal addresses.
    Ssrf,
    /// Server-side template injection.
    Ssti,
    /// LDAP filter injection.
    Ldap,
    /// Other injections (Ruby, `data:` URIs, XML external entities).
    Generic,
    /// Known attack tools by user agent, and probe paths.
    Scanner,
    /// Malformed or evasive HTTP: smuggling, header injection, bad
    /// multipart, restricted extensions.
    Protocol,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 14] = [
        Category::Sqli,
        Category::Xss,
        Category::Lfi,
        Category::Rfi,
        Category::Rce,
        Category::Php,
        Category::Java,
        Category::Nodejs,
        Category::Ssrf,
        Category::Ssti,
        Category::Ldap,
        Category::Generic,
        Category::Scanner,
        Category::Protocol,
    ];

    /// The name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Sqli => "sqli",
            Category::Xss => "xss",
            Category::Lfi => "lfi",
            Category::Rfi => "rfi",
            Category::Rce => "rce",
            Category::Php => "php",
            Category::Java => "java",
            Category::Nodejs => "nodejs",
            Category::Ssrf => "ssrf",
            Category::Ssti => "ssti",
            Category::Ldap => "ldap",
            Category::Generic => "generic",
            Category::Scanner => "scanner",
            Category::Protocol => "protocol",
        }
    }

    /// Index for bit sets.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a request a value came from; rules say which they apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The URL path.
    Path,
    /// An argument name (query, form, JSON key, multipart field name).
    ArgName,
    /// An argument value (query, form, JSON string, XML text, multipart).
    Arg,
    /// A cookie name or value.
    Cookie,
    /// A header value other than the ones below.
    Header,
    /// `User-Agent`.
    UserAgent,
    /// `Referer`.
    Referer,
    /// An uploaded file's name (multipart `filename`, `X-Filename`).
    Filename,
    /// A body that has no structure bext parses (text, unknown types).
    Body,
}

impl Part {
    /// The name used in logs and exclusions.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Path => "path",
            Part::ArgName => "arg_name",
            Part::Arg => "arg",
            Part::Cookie => "cookie",
            Part::Header => "header",
            Part::UserAgent => "user_agent",
            Part::Referer => "referer",
            Part::Filename => "filename",
            Part::Body => "body",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of [`Part`]s.
#[derive(Clone, Copy, Debug)]
pub struct Parts(u16);

impl Parts {
    /// Whether `part` is in the set.
    pub fn has(self, part: Part) -> bool {
        self.0 & part.bit() != 0
    }
}

const fn parts(list: &[Part]) -> Parts {
    let mut bits = 0;
    let mut i = 0;
    while i < list.len() {
        bits |= list[i].bit();
        i += 1;
    }
    Parts(bits)
}

use Part::*;

/// Values a client chooses freely: arguments, cookies, bodies, file names.
const INPUT: Parts = parts(&[ArgName, Arg, Cookie, Body, Filename]);
/// The above plus free-form headers (not the user agent).
/// A browser's user agent is full of `;` and `()`: only the rules that
/// name it (via these sets) look at it.
const INPUT_HEADERS: Parts = parts(&[ArgName, Arg, Cookie, Body, Filename, Header, Referer]);
/// The above plus the user agent.
const INPUT_AGENT: Parts = parts(&[ArgName, Arg, Cookie, Body, Filename, Header, Referer, UserAgent]);
/// Everything but the user agent, the path included.
const INPUT_PATH: Parts = parts(&[Path, ArgName, Arg, Cookie, Body, Filename, Header, Referer]);
/// Everything, the path and the user agent included.
const INPUT_PATH_AGENT: Parts = parts(&[Path, ArgName, Arg, Cookie, Body, Filename, Header, Referer, UserAgent]);
/// Everything, the path included.
const ANY: Parts = parts(&[Path, ArgName, Arg, Cookie, Body, Filename, Header, Referer, UserAgent]);
/// Everything but the path.
const NOT_PATH: Parts = parts(&[ArgName, Arg, Cookie, Body, Filename, Header, Referer, UserAgent]);

/// One signature.
pub struct RuleDef {
    /// Stable id, used in logs, the audit log and exclusions.
    pub id: &'static str,
    /// Its family.
    pub category: Category,
    /// Parts of the request it applies to.
    pub parts: Parts,
    /// Lower-case words; the regex runs only if one occurs in the value.
    pub triggers: &'static [&'static str],
    /// Regex over the canonical value (lower-case).
    pub pattern: &'static str,
}

/// Unix commands an attacker runs first; words that are also common
/// English ("time", "more", "find", "head") are left out.
macro_rules! unix_cmds {
    () => {
        r"(?:cat|tac|ls|whoami|uname|ifconfig|netstat|wget|curl|nc|ncat|netcat|socat|telnet|bash|sh|zsh|ksh|csh|tcsh|dash|python[23]?|perl|ruby|php|lua|node|chmod|chown|chgrp|rm|mkfifo|mknod|killall|pkill|htop|env|printenv|base64|base32|xxd|hexdump|crontab|sudo|passwd|awk|gawk|sed|grep|egrep|nohup|ssh(?:-[a-z]+(?:-[a-z]+)?)?|scp|sftp|tftp|perf|xterm|lastlog|useradd|usermod|gzip|gunzip|unzip|gcc|systemctl|shutdown|reboot|halt|umount|eval|exec|alias|nmap|nslookup|traceroute|lsof|strace|ltrace|getent|hostname|pwd|uptime|dmesg|sysctl|iptables|chattr|openssl|busybox|finger|pstree|vi|vim|nano|tmux|xargs|unset|readlink|ldd|cd|column|cpulimit|gdb|rmt|apt-get|aptitude|dpkg|rpm|yum|dnf|apk|pip[23]?|npm|npx|docker|kubectl|podman|ansible(?:-[a-z]+)?|chef-[a-z]+|puppet|c89|c99|g\+\+|clang|visudo|cscli|acpi|ionice|taskset|chroot|setsid|unshare|nsenter|runuser|doas|pkexec|flock|stdbuf|rlwrap|tclsh|jjs|jrunscript|irb|luajit|php-cgi|rview|rvim|emacs|zcat|bzcat|xzcat|uuencode|uudecode|sshpass|rsync|smbclient|mysql|psql|sqlite3|redis-cli|tcpdump|tshark|aria2c|lwp-download|lwp-request|lynx|w3m|elinks|tar)"
    };
}

/// Unix commands that are also words ("cat food", "who knows"): only with
/// an option, a path, a separator or nothing after them.
macro_rules! unix_weak_cmds {
    () => {
        r"(?:id|ps|wc|dd|od|nl|ip|ss|su|kill|sleep|ping|dig|tail|less|tee|who|cat|ls|cd|env|rm|sh|nc|vi|top|date|df|du|history)"
    };
}

/// Windows commands, for the same purpose.
macro_rules! win_cmds {
    () => {
        r"(?:cmd(?:\.exe)?|powershell(?:\.exe)?|pwsh|iwr|irm|iex|iwmi|gwmi|icm|saps|certutil|bitsadmin|bcdboot|bcdedit|regedit|regsvr32|rundll32|wmic|net1|netsh|schtasks|tasklist|taskkill|systeminfo|ipconfig|mshta|cscript|wscript|msiexec|vssadmin|wevtutil|icacls|cacls|takeown|diskpart|ntdsutil|nltest|dsquery|whoami|findstr|xcopy|robocopy|tracert|runas|forfiles|pcalua|msbuild|installutil|regasm|regsvcs|cmstp|odbcconf|mavinject)"
    };
}

/// Windows commands that are also English words: only with a switch
/// (`dir /s`) or alone after a separator.
macro_rules! win_weak_cmds {
    () => {
        r"(?:reg|net|sc|attrib|format|hostname|type|dir|copy|del|erase|rmdir|rd|mkdir|md|move|ren|start|call|set|echo|ping|nslookup|arp|route|shutdown)"
    };
}

/// PHP functions that run code, touch files or the network.
macro_rules! php_fns {
    () => {
        r"(?:eval|assert|system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|phpinfo|base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|convert_uudecode|hex2bin|file_get_contents|file_put_contents|fopen|fwrite|fputs|fread|readfile|unlink|rmdir|mkdir|tempnam|create_function|call_user_func|call_user_func_array|preg_replace|unserialize|serialize|move_uploaded_file|curl_exec|curl_init|fsockopen|pfsockopen|stream_socket_client|show_source|highlight_file|symlink|chmod|chown|putenv|getenv|ini_set|ini_get|ini_restore|posix_\w+|array_map|array_filter|usort|uasort|register_shutdown_function|register_tick_function|ob_start|include_once|require_once|var_dump|print_r|var_export|debug_zval_dump|get_defined_vars|get_defined_functions|scandir|opendir|readdir|is_dir|is_file|file_exists|parse_str|mb_ereg_replace|iconv|str_replace|strrev|phpversion|php_uname|getcwd|chdir|set_time_limit|error_reporting|setcookie|apache_setenv|escapeshellcmd|escapeshellarg|proc_nice|proc_terminate|proc_get_status|pclose|socket_create|socket_connect|fpassthru|ftp_connect|ftp_exec|imap_open|ldap_connect|mysql_query|mysqli_query|pg_query|sqlite_query|simplexml_load_file|simplexml_load_string|libxml_disable_entity_loader|printf|sprintf|vsprintf|fprintf|intval|floatval|strval|settype|gettype|strip_tags|addslashes|stripslashes|htmlspecialchars|unpack|filegroup|fileowner|fileperms|filesize|filemtime|fileatime|is_writable|is_readable|lchown|chgrp|umask|getmypid|getmyuid|get_current_user|getlastmod|gethostbyname|dns_get_record|stream_get_contents|stream_context_create|array_walk|array_reduce|func_get_args|implode|explode|substr_replace|trim|strtolower|strtoupper|ucfirst|str_pad|str_repeat|md5_file|sha1_file|crc32|hash_file|bin2hex|dechex|hexdec|octdec|decoct|base_convert|uniqid|mt_rand|srand|microtime|usleep|chroot)"
    };
}

/// SQL's function names, as CRS's rule 942410 lists them (OWASP CRS
/// 3.3.4, Apache-2.0): the vocabulary a call in an injection is written
/// in, across MySQL, PostgreSQL, SQL Server and Oracle.
macro_rules! sql_fns {
    () => {
        r"c(?:o(?:n(?:v(?:ert(?:_tz)?)?|cat(?:_ws)?|nection_id)|(?:mpres)?s|ercibility|(?:un)?t|alesce)|ur(?:rent_(?:time(?:stamp)?|date|user)|(?:dat|tim)e)|h(?:ar(?:(?:acter)?_length|set)?|r)|iel(?:ing)?|ast|r32)|s(?:t(?:d(?:dev(?:_(?:sam|po)p)?)?|r(?:_to_date|cmp))|u(?:b(?:str(?:ing(?:_index)?)?|(?:dat|tim)e)|m)|e(?:c(?:_to_time|ond)|ssion_user)|ys(?:tem_user|date)|ha[12]?|oundex|chema|ig?n|leep|pace|qrt)|i(?:s(?:_(?:ipv(?:4(?:_(?:compat|mapped))?|6)|n(?:ot(?:_null)?|ull)|(?:free|used)_lock)|null)?|n(?:et(?:6_(?:aton|ntoa)|_(?:aton|ntoa))|s(?:ert|tr)|terval)?|f(?:null)?)|d(?:a(?:t(?:e(?:_(?:format|add|sub)|diff)?|abase)|y(?:of(?:month|week|year)|name)?)|e(?:(?:s_(?:de|en)cryp|faul)t|grees|code)|count|ump)|l(?:o(?:ca(?:l(?:timestamp)?|te)|g(?:10|2)?|ad_file|wer)|ast(?:_(?:insert_id|day))?|e(?:(?:as|f)t|ngth)|case|trim|pad|n)|u(?:n(?:compress(?:ed_length)?|ix_timestamp|hex)|tc_(?:time(?:stamp)?|date)|p(?:datexml|per)|uid(?:_short)?|case|ser)|r(?:a(?:wto(?:nhex(?:toraw)?|hex)|dians|nd)|e(?:p(?:lace|eat)|lease_lock|verse)|o(?:w_count|und)|ight|trim|pad)|t(?:ime(?:_(?:format|to_sec)|stamp(?:diff|add)?|diff)?|o_(?:(?:second|day)s|base64|n?char)|r(?:uncate|im)|an)|m(?:a(?:ke(?:_set|date)|ster_pos_wait|x)|i(?:(?:crosecon)?d|n(?:ute)?)|o(?:nth(?:name)?|d)|d5)|f(?:i(?:eld(?:_in_set)?|nd_in_set)|rom_(?:unixtime|base64|days)|o(?:und_rows|rmat)|loor)|p(?:o(?:w(?:er)?|sition)|eriod_(?:diff|add)|rocedure_analyse|assword|g_sleep|i)|a(?:s(?:cii(?:str)?|in)|es_(?:de|en)crypt|dd(?:dat|tim)e|(?:co|b)s|tan2?|vg)|b(?:i(?:t_(?:length|count|x?or|and)|n(?:_to_num)?)|enchmark)|e(?:x(?:tract(?:value)?|p(?:ort_set)?)|nc(?:rypt|ode)|lt)|g(?:r(?:oup_conca|eates)t|et_(?:format|lock))|v(?:a(?:r(?:_(?:sam|po)p|iance)|lues)|ersion)|o(?:(?:ld_passwo)?rd|ct(?:et_length)?)|we(?:ek(?:ofyear|day)?|ight_string)|n(?:o(?:t_in|w)|ame_const|ullif)|h(?:ex(?:toraw)?|our)|qu(?:arter|ote)|year(?:week)?|xmltype"
    };
}

/// The rule table.
pub static RULES: &[RuleDef] = &[
    // ---- SQL injection (beyond libinjection's tokenizer)
    RuleDef {
        id: "sqli-time-fn",
        category: Category::Sqli,
        parts: INPUT_PATH_AGENT,
        triggers: &[
            "sleep",
            "benchmark",
            "waitfor",
            "pg_sleep",
            "dbms_",
            "randomblob",
            "get_lock",
            "sysdate",
        ],
        pattern: r"\b(?:sleep|benchmark|pg_sleep|dbms_lock\.sleep|dbms_pipe\.receive_message|randomblob|get_lock)\s*\((?:\s|/\*.*?\*/)*[\d'@]|\bwaitfor\s+(?:delay|time)\s+['\d]|\bselect\s+pg_sleep\b|\bnow\s*\(\s*\)\s*=\s*sysdate\s*\(",
    },
    RuleDef {
        id: "sqli-function-call",
        category: Category::Sqli,
        parts: INPUT,
        triggers: &[
            "(", "::", "table", "insert", " as", "';", "'--", "'#", "')", "' or", "\";", "`;",
        ],
        pattern: r"(?:^|[^\w.$>-])(?:database|db_name|schema_name|current_user|session_user|system_user|user_name|suser_sname|concat|concat_ws|compress|uncompress|xmltype|hex|unhex|ifnull|isnull|nullif|md5|sha1|sha2|encode|decode|aes_encrypt|aes_decrypt|des_encrypt|nchar|ascii|ord|substring|substr|instr|locate|lpad|rpad|ltrim|rtrim|load_file|version|found_rows|last_insert_id|connection_id|coalesce|greatest|least|make_set|export_set|json_extract|json_keys|to_base64|from_base64|sysdate|pow|power|rand|sin|cos|benchmark|sleep|exp|log10|sqrt|floor|ceiling|char_length|bit_length|octet_length|soundex|unicode|quotename|object_id|object_name|col_name|has_dbaccess|is_srvrolemember|sqlite_version|zeroblob|typeof|to_char|to_number|nvl2?|utl_\w+|dbms_\w+|xp_\w+|sp_\w+|div|lo_get|lo_import|lo_export|lo_from_bytea|unistr|starts_with|pg_read_file|pg_read_binary_file|pg_ls_dir|current_setting|query_to_xml|database_to_xml|regexp_substr|regexp_replace|string_agg|array_agg|array_to_string|json_agg|xmlagg|listagg)\s*\\?(?:=\s*)?\(|\w\s*\)?\s*::\s*(?:int|integer|int4|int8|bigint|smallint|numeric|text|varchar|char|bool|boolean|regclass|oid|json|jsonb|bytea|float|real|double|decimal|date|timestamp)\b|\b(?:alter|create|drop|truncate|rename)\s+table\s+[`'\x22\[]?\w|\binsert\s+into\s+[`'\x22\[]?\w+[`'\x22\]]?\s*(?:\(|values\b|select\b)|['\x22`]\s*as\s*['\x22`][^'\x22`]*['\x22`]\s*from\b|^[\w.+-]+@[\w.-]+['\x22`]\s*(?:;|--|#|\)|or\b)",
    },
    RuleDef {
        id: "sqli-db-names",
        category: Category::Sqli,
        parts: INPUT,
        triggers: &[
            "msdb",
            "northwind",
            "tempdb",
            "schema_name",
            "sysibm",
            "sysdummy",
            "master..",
            "pubs",
            "db_name",
            "sysdatabases",
        ],
        pattern: r"^\s*(?:msdb|northwind|tempdb|pubs|schema_name|sysibm|sysdummy1|db_name)\s*$|\bmaster\s*\.\.|\bsysdatabases\b|\bsysibm\.\w+",
    },
    RuleDef {
        id: "sqli-overflow-number",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg]),
        triggers: &["2.225073858507", "4294967", "2147483", "1e309", "9223372036854775"],
        pattern: r"^\s*-?(?:2\.225073858507201[01]e-308|429496729[56]|214748364[789]|1e309|922337203685477580[78])\s*$",
    },
    RuleDef {
        id: "sqli-conditional",
        category: Category::Sqli,
        parts: INPUT_PATH,
        triggers: &[
            "like", "case", "having", "if(", "if (", "iif", "execute", "merge", "match", "declare", "select", " as",
        ],
        pattern: r#"\)\s*(?:like|rlike|regexp)\s*\(|\bcase\s+when\b.{0,80}\bthen\b|\bhaving\s+(?:count|sum|min|max|avg)\s*\(|\bif\s*\(\s*[\w'"@]+\s*(?:=|<|>)|\biif\s*\(|\bexecute\s+immediate\b|\bmerge\b.{0,60}\busing\b.{0,60}\bon\b|\bmatch\s*\(.{0,60}\)\s*against\s*\(|\bdeclare\s+@\w+|\bselect\s+(?:\w+\s*\(|@@|top\s+\d|distinct\b|count\s*\(|null\b|\d+\s*,)|\b\d+\s+as\s*['"`]\w*['"`]?\s*from\b|unionselect|\bselect\s+\w+\s+(?:group\s+by|from\s+\w+\s+where)"#,
    },
    RuleDef {
        id: "sqli-json-operators",
        category: Category::Sqli,
        parts: INPUT_PATH,
        triggers: &["::json", "@>", "<@", "?|", "?&", "#>", "->", "'$.", "'{", "@?", "@@"],
        pattern: r#"::\s*jsonb?\b|'\s*(?:@>|<@|\?\||\?&|#>>?|->>?|@\?|@@)\s*'|'\{[^']*\}'\s*(?:\?|@>|<@|<|>|=)|'\$\.[\w\[\]*.]*'|\bor\s+'\{"#,
    },
    RuleDef {
        id: "sqli-union",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["union"],
        pattern: r"\bunion\b(?:\s|/\*.*?\*/|\()*(?:all|distinct)?(?:\s|/\*.*?\*/|\()*select\b",
    },
    RuleDef {
        id: "sqli-catalog",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &[
            "information_schema",
            "sysobjects",
            "syscolumns",
            "sys.",
            "mysql.",
            "pg_",
            "sqlite_master",
            "msysaccessobjects",
            "all_tables",
            "user_tables",
        ],
        pattern: r"\binformation_schema\b|\bsys(?:objects|columns|users)\b|\bsys\.(?:objects|tables|columns|databases|sql_logins)\b|\bmysql\.(?:user|db)\b|\bpg_(?:catalog|shadow|user|database|tables|stat_activity)\b|\bsqlite_(?:master|schema)\b|\bmsysaccessobjects\b|\b(?:all|user)_tables\b",
    },
    RuleDef {
        id: "sqli-functions",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &[
            "extractvalue",
            "updatexml",
            "load_file",
            "outfile",
            "dumpfile",
            "xp_",
            "sp_",
            "utl_",
            "concat",
            "char(",
            "chr(",
            "version(",
            "database(",
            "user(",
            "@@",
            "group_concat",
            "substr",
            "ascii(",
            "hex(",
            "unhex",
            "cast(",
            "convert(",
            "exp(",
            "floor(rand",
            "row_count",
            "name_const",
            "procedure analyse",
        ],
        pattern: r"\b(?:extractvalue|updatexml|load_file|xp_cmdshell|xp_dirtree|xp_regread|sp_executesql|sp_oacreate|sp_makewebtask|sp_password|utl_http\.request|utl_inaddr\.get_host_\w+|group_concat|concat_ws|name_const|row_count|unhex|floor\s*\(\s*rand)\s*\(|\binto\s+(?:out|dump)file\b|@@(?:version|datadir|hostname|basedir|tmpdir|servername)\b|\b(?:version|database|current_user|session_user|system_user|user|schema)\s*\(\s*\)|\bprocedure\s+analyse\b|\b(?:char|chr|ascii|ord|hex|substr|substring|mid|cast|convert)\s*\(.{0,60}\)\s*(?:=|<|>|\|\||\+|,\s*\d)|\b(?:concat|char)\s*\(\s*(?:0x|\d+\s*,|\w+\s*\(|'|@)",
    },
    RuleDef {
        id: "sqli-stacked",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &[";", "select"],
        pattern: r";\s*(?:drop|truncate|alter|create|delete|insert|update|replace|rename|exec|execute|declare|shutdown|grant|revoke|select|load|copy|merge|call)(?:\s*[\(\[]|\s+(?:table|database|schema|view|function|procedure|index|user|from|into|\w+\s+set\b|master|xp_|sp_|\*|@|\w+\s*\(|\w+\s+from\b|\w+\s+into\b))|;\s*(?:truncate|shutdown)\b|;\s*(?:grant|revoke)\s+[\w ,*]+?\s+(?:on|to|from)\b|^\W{0,3};\s*(?:drop|truncate|alter|create|delete|insert|update|exec|execute|declare|shutdown|grant|revoke|select)\s*$|[=<>]\s*\(\s*select\b",
    },
    RuleDef {
        // A closed string or value and a condition. A constant after the
        // boolean is followed by what SQL writes next (the end, an
        // operator, a comment, a quote the app's own closes); a quote
        // then a word opens a string SQL cannot parse, as measures do
        // (`5' or 6' ladder`).
        id: "sqli-tautology",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &[
            "or",
            "and",
            "xor",
            "||",
            "&&",
            "having",
            "like",
            "rlike",
            "regexp",
            "sounds like",
            "div",
            "is not",
            "between",
            "!=",
            "<>",
            "=",
        ],
        pattern: r#"['"`\)]\s*(?:or|and|xor|\|\||&&|div|having)\b\s*[\(\s]*['"`]?\s*[\w.-]*['"`]?\s*(?:=|<|>|!=|<>|\blike\b|\brlike\b|\bregexp\b|\bsounds\s+like\b|\bis\s+(?:not\s+)?null\b|\bbetween\b|\bin\b\s*\()|\b(?:or|and|having)\s+(\d+)\s*(?:=|<=>|>=|<=|<|>)\s*\d+\s*(?:$|--|#|/\*|;|\))|\b(?:or|and)\s+['"](\w*)['"]\s*=\s*['"]\w*|['"]\s*(?:or|and|\|\|)\s*(?:(?:true|false|not|!)\b(?:$|[^'"]|['"]\s*(?:$|[^\s\w]))|\d+(?:[./]\d+)*(?:$|[^'"./\d\w]|[./](?:$|\D)|['"]\s*(?:$|[^\s\w])))|\bwhere\s+\d+\s*=\s*\d+|['"`]\w*['"`]\s*(?:!=|<>|<=>|=)\s*['"`]"#,
    },
    RuleDef {
        // A string closed, an operator, a string opened: `x' sounds like 'y`,
        // `a' & 'b` (MySQL compares and combines strings with these).
        id: "sqli-quoted-operator",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["sounds", "rlike", "regexp", "xor", "div", "&", "|", "^"],
        pattern: r#"\w['"`]\s*(?:not\s+)?(?:sounds\s+like|rlike|regexp|xor|div|\|\||[&|^]|<=>)\s*['"`]|\w\s+['"`]\s*(?:not\s+)?(?:rlike|regexp)\s*['"`]\s*\w"#,
    },
    RuleDef {
        id: "sqli-comment",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["'", "\"", "`", "/*!"],
        pattern: r#"^[\w.@-]*['"`]\s*(?:--|#|/\*|;\s*--|\)\s*(?:--|#))|/\*!\d*\s*\w|^\s*['"`]\s*(?:\)\s*)*(?:(?:or|and|having)\s+(?:\d|['"`(]|null\b|true\b|false\b)|union\s+(?:\d|['"`(]|select\b|all\b|null\b)|select\s+(?:\d|['"`(]|null\b|[\w,*\s]+\bfrom\b))"#,
    },
    RuleDef {
        id: "sqli-order-by",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["order", "group"],
        pattern: r#"['"`\)\d]\s*(?:order|group)\s+by\s+(?:\d+|\w+\s*(?:asc|desc)?)\s*(?:--|#|/\*|$|,)"#,
    },
    RuleDef {
        id: "sqli-nosql",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Body]),
        triggers: &["$"],
        pattern: r"(?:^|\[)\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|nor|not|expr|function|accumulator|elemmatch|all|size|mod|text|jsonschema)(?:\]|$)",
    },
    RuleDef {
        // A string closed and an SQL operator after it, with the rest of
        // the query commented out: `x'-email--`, `a'or?--`, `'glob 1;`.
        id: "sqli-quote-break",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["'", "\""],
        pattern: r#"['"]\s*collate\s*[`"'\\]*(?:nocase|binary|rtrim|(?:utf8|utf16|utf32|latin[125]|ascii|ucs2|cp\d+|big5|gbk|sjis|koi8)\w*|\w+_(?:ci|cs|bin))\b|(?:['"]\s*(?:or|and|xor|not|is|like|ilike|glob|rlike|regexp|div|mod|notnull|isnull|between|in|sounds\s+like)\b|'\s*[-^&<>%|=+*/!?(])[^'"]{0,80}(?:--[\s-]*|#\s*|/\*[^'"]{0,40})$|['"]\s*(?:or|and|xor|not|is|like|ilike|glob|rlike|regexp|collate|div|mod)\b[^'"]{0,80};\s*$|[\w\\]['"](?:or|and|xor|\|\||&&)['"]\w|^\s*['"`]\s*\)?\s*;\s*(?:--|#)?\s*$"#,
    },
    RuleDef {
        // Clauses only SQL writes: an alias before FROM, a subquery in
        // IN, FROM a table WHERE a column compares, session variables,
        // hex literals selected, CASE branches.
        id: "sqli-clause",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["from", "select", "except", "set", "@", "when", "open", "drop"],
        pattern: r#"\)\s*as\s+[\w`'"]+\s+from\b|\bin\s*\(\s*select\b|\bexcept\s+(?:values\s*\(|select\b)|^(?:[\w.\[\]]+=)?\W{0,3}from\s+[\w.`"\[\]]+\s+(?:where\s+[\w.`"\[\]]+\s*(?:=|<|>|!=|\blike\b|\bin\s*\(|\bis\s+(?:not\s+)?null\b)|group\s+by\s+\w|order\s+by\s+\w+\s*(?:asc\b|desc\b|,|;|$)|limit\s+\d)|\bselect\s+0x[0-9a-f]+|\bset\s+@@?\w+\s*:?=|[;>=]\s*set\s+@@?\w+|\bdrop\s+(?:table\s+)?[\w.`"\[\]]+\s*;\s*(?:--|#)|\bselect\s*\{|@@?\w+\s*:=|\)\s*when\s+[\w'"]+\s+then\b|\bopen(?:rowset|datasource|query)\b"#,
    },
    RuleDef {
        // A value that starts with a boolean operator and a comparison:
        // what is appended to a number in a query (`AND 7639=(`, `|| x == '`).
        id: "sqli-boolean-prefix",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Cookie, Body]),
        triggers: &["and", "or", "&&", "||"],
        pattern: r#"^(?:[\w.\[\]]+=)?\W{0,3}(?:and|or|xor|&&|\|\|)\s*\(?\s*[\w.@]+\s*(?:={1,3}|!==?|<>|<=>|>=|<=)\s*(?:[\d(!]|['"]|null\b|$)|^(?:[\w.\[\]]+=)?\W{0,3}(?:and|or|xor)\s+\d+\s*(?:#|--)"#,
    },
    RuleDef {
        // Stored procedures that reach the OS, the network or the file
        // system, by name: a payload names them before calling them.
        id: "sqli-procedures",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["xp_", "sp_", "utl_"],
        pattern: r"\b(?:xp_(?:cmdshell|dirtree|regread|regwrite|fileexist|subdirs|availablemedia|servicecontrol)|sp_(?:executesql|oacreate|oamethod|makewebtask|password|addextendedproc|configure|addsrvrolemember|addlogin)|utl_(?:http|inaddr|file|smtp|tcp))\b",
    },
    RuleDef {
        // A value that ends in an SQL function's open parenthesis, with at
        // most a few operator bytes between (`cast(`, `length&&(`,
        // `date]=(`): the start of a call whose rest the query supplies.
        id: "sqli-open-call",
        category: Category::Sqli,
        parts: INPUT,
        triggers: &["("],
        pattern: concat!(
            r"(?:^|[^\w.$>-])(?:cast|convert|chr|char|nchar|count|date|now|if|in|length|len|local|log|minute|hour|second|day|month|year|pi|replace|round|time|upper|lower|left|right|format|concat|substring|substr|mid|ascii|sleep|user|password|database|version|coalesce|ifnull|nullif|isnull|abs|floor|ceil|ceiling|rand|md5|sha1|hex|unhex|instr|trim|ltrim|rtrim|reverse|repeat|least|greatest|sum|avg|min|max|exists|values|schema|benchmark|extractvalue|updatexml|and|or|not|xor|",
            sql_fns!(),
            r")\b[^\w(\s]{0,6}\s*[^\w(\s]{0,6}\(\s*$"
        ),
    },
    RuleDef {
        // An SQL operator that needs an operand, with the operand cut off
        // or the value starting with it: `something LIKE '`, `xor 5-`,
        // `xor 'b' >`.
        id: "sqli-dangling-operator",
        category: Category::Sqli,
        parts: INPUT,
        triggers: &["like", "regexp", "glob", "xor"],
        pattern: r#"(?:^|[^'"\w])(?:not\s+)?(?:like|rlike|ilike|regexp|glob)\s*['"]\s*$|^\s*xor\s*(?:'[^']*'|"[^"]*"|\d+)\s*(?:[<>=!-]|$)"#,
    },
    RuleDef {
        // A value that starts by closing a string: a quote, then an
        // operator, a comparison or a boolean word, which is where an
        // injected value leaves the literal it was put in (`'>65`,
        // `"2562*23`, `' or abc!`, `', 2, 1`, `admin' union x`).
        id: "sqli-string-breakout",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Cookie, Body]),
        triggers: &["'", "\"", "`"],
        pattern: r#"^\s*['"`]{1,2}\s*(?:[<>=*%^,;:}|&]|\)\s*(?:and|or|[;<>=])|\d+\s*[*/%<>=]|(?:or|xor|and|\|\||&&)\s+['"]?\w+['"]?\s*(?:[!=<>]|$))|[\w)]['"`]\s*union(?:\s+\w|\s*/|\s*\(|\s*$)|^\s*'\s*union\b[^']*$|^\s*"\s*union\b[^"]*$|['"]\d+['"]\s*(?:=|!=|<>)\s*['"]\d+"#,
    },
    RuleDef {
        // A statement that starts a value after what closes the one being
        // built (a quote, a parenthesis, a semicolon), with only symbols
        // or digits before it (`') union`, `1"; alter`): CRS 942361's
        // grammar, narrowed to closing punctuation so that a bullet, a
        // house number or a quoted phrase (`- union members`, `1 Union
        // Street`, `"union jack" covers`) passes.
        id: "sqli-leading-statement",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Cookie, Body]),
        triggers: &["union", "alter"],
        pattern: r#"^[\W\d]*(?:[);]|['"`][\W\d]*?\W)[\W\d]*?(?:alter|union)\b"#,
    },
    RuleDef {
        // A quote escaped with a backslash and then a boolean operator
        // right after it (`\'or'1`, `x\" and 1`): the escape an
        // `addslashes` filter adds is undone by a multi-byte or doubled
        // backslash, and the quote closes the string after all (CRS
        // 942522's grammar; a string between, `\'lol' or`, is CRS's near
        // miss and passes).
        id: "sqli-escaped-quote-boolean",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Cookie, Body]),
        triggers: &["\\'", "\\\"", "\\`"],
        pattern: r#"\\['"`]\s*(?:(?:and|or|xor)\b|&&|\|\|)"#,
    },
    RuleDef {
        // A value that is only a boolean operator and a number (`or 88`):
        // the tail of a condition, not data. (A value that is a true
        // comparison of numbers, `11!=1`, is `sqli-constant-condition`.)
        id: "sqli-bare-condition",
        category: Category::Sqli,
        parts: parts(&[Arg, Cookie, Body]),
        triggers: &["or", "and"],
        pattern: r"^\s*(?:x?or|and)\s+\d+\s*$",
    },
    RuleDef {
        // A value that is nothing but an SQL operator, a test of a value
        // against a list, or a stored procedure run by name (`<<`, `<=>`,
        // `regexp`, `not in (1,2)`, `execute sp_who`): the part of a
        // condition an injection supplies, never data (CRS 942120, 942380).
        // A procedure is told from a word by its `_`, `.`, `@` or digit:
        // `exec noun` is a search.
        id: "sqli-bare-operator",
        category: Category::Sqli,
        parts: parts(&[ArgName, Arg, Cookie, Body]),
        triggers: &[
            "<<", ">>", "||", "&&", "<>", "!=", "==", ">=", "<=", ":=", "regexp", "rlike", "ilike", "notnull",
            "isnull", "sounds", "in ", "in(", "exec",
        ],
        pattern: r#"^\s*(?:<<|>>|\|\||&&|<=>|<>|!=|==|>=|<=|:=|(?:not\s+)?(?:regexp|rlike|ilike|notnull|isnull|sounds\s+like)|(?:not\s+)?in\s*\(\s*[-\d'"][^()]*\)|exec(?:ute)?\s{1,5}[\w$@#]*[_.$@#\d][\w.$@#]*)\s*$"#,
    },
    RuleDef {
        // Names only SQL writes (CRS 942470's list): types cast to in a
        // payload (`nvarchar`, `sql_variant`), Oracle's packages and
        // views, SQL Server's autonomous transaction.
        id: "sqli-type-name",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &[
            "varchar",
            "sql_",
            "dbms_java",
            "dba_users",
            "autonomous_transaction",
            "tbcreator",
            "owa_util",
        ],
        pattern: r"\b(?:n?varchar|sql_(?:variant|longvarchar)|dbms_java|dba_users|autonomous_transaction|tbcreator|owa_util)\b",
    },
    RuleDef {
        // A whole value that closes what it was meant to be (a string, a
        // number, a parenthesis) and appends a condition made of
        // constants only, then ends or comments the rest out: `x' or ~0
        // or '`, `1) or 2>1--`, `-1 xor !!1`, `1' && 0x31=0x31#`. A
        // condition of constants says nothing about a row, so only an
        // injection writes one (libinjection's model: the whole value, from
        // its start). After a number, a bare number is data (`1 or 2`).
        id: "sqli-constant-boolean",
        category: Category::Sqli,
        parts: INPUT,
        // The operator after what closes a value (`sort` wakes nothing).
        triggers: &[
            " or", "'or", "\"or", "`or", ")or", " and", "'and", "\"and", "`and", ")and", "xor", "||", "&&",
        ],
        pattern: concat!(
            // A string closed and any constant, or a number closed and a
            // truth value or a comparison of constants.
            r#"^\s*(?:[^'"`\s]*['"`]\s*\)*\s*(?:or|and|xor|\|\||&&)\s*\(*\s*(?:not\s+|!+\s*|~\s*)*(?:true|false|null|0x[0-9a-f]+|-?\d+(?:\.\d+)?|'[^']*(?:'|$)|"[^"]*(?:"|$))(?:"#,
            r#"\s*(?:=|!=|<>|<=>|<=|>=|<|>|\blike\b|\brlike\b|\bregexp\b)\s*(?:not\s+|!+\s*|~\s*)*(?:true|false|null|0x[0-9a-f]+|-?\d+(?:\.\d+)?|'[^']*(?:'|$)|"[^"]*(?:"|$))"#,
            r#"|\s+in\s*\(\s*[\d\s,'"]+\)|\s+between\s+-?\d+\s+and\s+-?\d+)?"#,
            r#"|-?\d+\s*\)*\s*(?:or|and|xor|\|\||&&)\s*\(*\s*(?:(?:not\s+|!+\s*|~\s*)+(?:true|false|null|0x[0-9a-f]+|-?\d+(?:\.\d+)?)|(?:true|false)\b|(?:0x[0-9a-f]+|-?\d+(?:\.\d+)?|'[^']*'|"[^"]*")(?:"#,
            r#"\s*(?:=|!=|<>|<=>|<=|>=|<|>|\blike\b|\brlike\b|\bregexp\b)\s*(?:not\s+|!+\s*|~\s*)*(?:true|false|null|0x[0-9a-f]+|-?\d+(?:\.\d+)?|'[^']*(?:'|$)|"[^"]*(?:"|$))"#,
            r#"|\s+in\s*\(\s*[\d\s,'"]+\)|\s+between\s+-?\d+\s+and\s+-?\d+)))"#,
            // And the end of the statement, or the rest commented out.
            r#"\s*\)*\s*(?:$|--|#|/\*|;|\x00|(?:or|and)\s*['"(]|limit\b|['"`]\s*\)*\s*(?:$|--|#|;))"#
        ),
    },
    RuleDef {
        // A string closed, a boolean operator and a call to any SQL
        // function (`' or json_valid (id)`, `" and sleep(4)`): the
        // condition an injection appends, in SQL's whole vocabulary.
        id: "sqli-boolean-call",
        category: Category::Sqli,
        parts: INPUT_HEADERS,
        triggers: &["'", "\"", "`"],
        pattern: concat!(
            r#"['"`]\s*\)?\s*(?:or|and|xor|\|\||&&|not)\s*\(?\s*(?:"#,
            sql_fns!(),
            r"|json(?:_\w+)?)\s*\("
        ),
    },
    // ---- cross-site scripting (beyond libinjection)
    RuleDef {
        id: "xss-script-tag",
        category: Category::Xss,
        parts: INPUT_PATH_AGENT,
        triggers: &["<", "\u{bc}", "+adw-", "!entity"],
        pattern: r"<\s*/?\s*(?:\w+\s*:\s*)?script\b|\x{bc}\s*/?\s*(?:script|img|svg|iframe)|\+adw-\s*/?\s*(?:script|img|svg|iframe|body|a\b)|<\s*(?:f\s*o\s*r\s*m|d\s*i\s*a\s*l\s*o\s*g|s\s*c\s*r\s*i\s*p\s*t|i\s*f\s*r\s*a\s*m\s*e|s\s*v\s*g|o\s*b\s*j\s*e\s*c\s*t|e\s*m\s*b\s*e\s*d|s\s*t\s*y\s*l\s*e|m\s*e\s*t\s*a|b\s*a\s*s\s*e|l\s*i\s*n\s*k|t\s*e\s*m\s*p\s*l\s*a\s*t\s*e|i\s*m\s*p\s*o\s*r\s*t|i\s*s\s*i\s*n\s*d\s*e\s*x|k\s*e\s*y\s*g\s*e\s*n|a\s*p\s*p\s*l\s*e\s*t|m\s*a\s*r\s*q\s*u\s*e\s*e)(?:\s|/|>|$)|<\s*(?:\w+\s*:\s*)?(?:vmlframe|import\w*|dialog|form)\b|<\s*[a-z]+\b[^>]*\bon[a-z]{3,25}\s*=|<!entity\b|!entity\s+%?\s*\w+\s+system\b",
    },
    RuleDef {
        id: "xss-js-uri",
        category: Category::Xss,
        parts: parts(&[Path, ArgName, Arg, Cookie, Body, Filename, Header, Referer]),
        triggers: &["script", "vbs", "&#", "livescript", "mocha", "url", "data"],
        pattern: r"\burl\s*\(\s*['\x22]?\s*(?:javascript|vbscript|data)\b|\bdata\s*:[^,]{0,40},\s*<|(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e)\s*s\s*c\s*r\s*i\s*p\s*t\s*:|\bmocha\s*:|&#(?:x0*6a|0*106);?\s*(?:&#(?:x0*61|0*97);?|a)",
    },
    RuleDef {
        id: "xss-event-handler",
        category: Category::Xss,
        parts: INPUT_PATH_AGENT,
        triggers: &["on"],
        pattern: r#"(?:^|[\s"'`/;<>=0-9,(])on[a-z]{3,25}\s*=(?:[^=]|$)|(?:^|[\s"'`/;<>=])on(?:error|load|click|dblclick|mouse\w+|focus\w*|blur|change|submit|key\w+|contextmenu|animation\w+|transition\w+|toggle|pointer\w+|begin|end|start|finish|scroll|resize|input|invalid|select|wheel|drag\w*|drop|paste|copy|cut|hashchange|pageshow|pagehide|message|beforeunload|unload|play|playing|pause|ended|auxclick|afterprint|beforeprint|readystatechange|search|show|abort|canplay\w*|durationchange|emptied|loadeddata|loadedmetadata|loadstart|progress|ratechange|reset|seeked|seeking|stalled|suspend|timeupdate|volumechange|waiting|popstate|storage|online|offline|beforeinput|formdata|securitypolicyviolation|touch\w+)\s*=\s*\S"#,
    },
    RuleDef {
        id: "xss-tag",
        category: Category::Xss,
        parts: INPUT_PATH_AGENT,
        triggers: &["<"],
        pattern: r#"<\s*/?\s*(?:iframe|frame|frameset|object|embed|applet|meta|base|svg|math|xss|isindex|xml|import|layer|ilayer|bgsound|vmlframe|template|portal|animate|set|handler|listener)\b|<\s*(?:img|image|video|audio|source|input|body|form|button|details|marquee|link|style|a|div|table|td|select|textarea|keygen|object|input|x|html)\b[^>]*?\b(?:src|href|action|formaction|background|dynsrc|lowsrc|data|xlink:href|style)\s*=\s*['"`]?\s*(?:javascript|vbscript|data|livescript)\s*:|<\s*style\b[^>]*>[^<]*(?:expression\s*\(|@import|url\s*\(|behavior\s*:)|<\s*link\b[^>]*\brel\s*=\s*['"]?(?:stylesheet|import)"#,
    },
    RuleDef {
        id: "xss-dom",
        category: Category::Xss,
        parts: INPUT,
        triggers: &[
            "alert",
            "prompt",
            "confirm",
            "document",
            "window.",
            "fromcharcode",
            "expression",
            "eval",
            "settimeout",
            "setinterval",
            "setimmediate",
            "execscript",
            "btoa",
            "atob",
            "innerhtml",
            "top[",
            "self[",
            "parent[",
            "reflect",
            "[]",
            ".call",
            ".apply",
        ],
        pattern: r#"\b(?:alert|prompt|confirm)\s*(?:\?\.\s*)?(?:\(|`|&#)|\b(?:alert|prompt|confirm|eval)\s*\??\.\s*(?:call|apply|bind)\s*\(|\b(?:document|window|top|self|parent|frames)\s*\??(?:\.\s*(?:cookie|write|writeln|location|domain|body|open)\b|\[\s*['"`])|\bstring\s*\.\s*fromcharcode\b|\bstyle\s*=.{0,40}\bexpression\s*\(|\b(?:settimeout|setinterval)\s*\(\s*['"`]|\.innerhtml\s*=|\b(?:settimeout|setinterval|setimmediate|execscript|btoa|atob)\s*\(|\bdocument\s*\.\s*(?:queryselector\w*|getelement\w+|createelement|documentelement|forms|scripts|images|links|head)\b|\breflect\s*\.\s*\w+|\.\s*(?:call|apply|bind)\s*`|!!?\s*\[\s*\]|\[\s*\]\s*\[|\[\s*\+\s*\[\s*\]\s*\]"#,
    },
    RuleDef {
        // A script call in the path runs on a page that echoes it (a 404
        // page); DOM names alone are documentation URLs there.
        id: "xss-path-call",
        category: Category::Xss,
        parts: parts(&[Path]),
        triggers: &["alert", "prompt", "confirm", "eval"],
        pattern: r"\b(?:alert|prompt|confirm|eval)\s*(?:\?\.\s*)?(?:\(|`)|\b(?:alert|prompt|confirm|eval)\s*\??\.\s*(?:call|apply|bind)\s*\(",
    },
    // ---- local file inclusion and path traversal
    RuleDef {
        id: "lfi-traversal",
        category: Category::Lfi,
        parts: ANY,
        triggers: &[".."],
        pattern: r"(?:^|[/\\=:;,\s])\.\.(?:[/\\;][^\s]|[/\\]$|;/|$)|(?:^|[/\\])\.\.(?:[/\\;][^\s]|[/\\;]$)",
    },
    RuleDef {
        id: "lfi-os-files",
        category: Category::Lfi,
        parts: NOT_PATH,
        triggers: &[
            "etc/",
            "proc/",
            "sys/",
            ".ini",
            "system32",
            "boot.",
            "/var/",
            "/tmp/",
            "/dev/",
            "/root",
            "/home/",
            "id_rsa",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            ".ssh",
            "/usr/",
            "c:/",
            "c:\\",
            "/bin/",
            "/opt/",
            "/srv/",
            "/run/",
            "/usr/local",
            "cmdline",
            "environ",
            "/.",
            "../",
            "file:",
            "ntuser",
            "$\\",
            "$/",
        ],
        pattern: r"(?:^|[\s'\x22=(])file:/|/(?:\./)*etc/(?:\./)*(?:passwd|shadow|group|gshadow|hosts|issue|motd|crontab|sudoers|master\.passwd|subuid|subgid|security|ssh|mysql|httpd|apache2?|nginx|php|environment|profile|bashrc|hostname|resolv\.conf|fstab|network|os-release|cron|init\.d|rc\.d|pam\.d|ld\.so|aliases|inetd|xinetd)|\bntuser\.dat\b|(?:^|[/\\]{2})[^/\\\s]+[/\\][a-z]\$(?:[/\\]|$)|/(?:\./)*proc/(?:self|\d+|thread-self)/(?:environ|cmdline|fd|maps|status|mem|exe|cwd|root|mounts|net)|/proc/(?:version|cpuinfo|meminfo|net|mounts|sched_debug|kcore)|/sys/(?:class|kernel|devices|firmware|power|module|bus|block)\b|(?:^|[/\\])(?:win|boot|system|php|desktop)\.ini\b|[/\\]windows[/\\](?:system32|win\.ini|repair|panther|debug)|(?:^|[/\\])\.ssh[/\\]|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|/var/(?:log|lib|run|mail|spool|www|backups|tmp)/|/root/|/home/\w+/\.|(?:^|[\s>|;&=])/(?:tmp|dev/shm|var/tmp)/\w|/dev/(?:tcp|udp|mem|kmem|fd)\b|(?:^|[/\\.])\.(?:history|bash_history|zsh_history|mysql_history|psql_history|sh_history|viminfo|lesshst|netrc|pgpass|git-credentials|docker|kube|aws|azure|gnupg|npmrc|pypirc|bash_profile|bashrc|profile)(?:$|[/\\])",
    },
    RuleDef {
        id: "lfi-restricted-paths",
        category: Category::Lfi,
        parts: parts(&[Path, Arg, Filename]),
        triggers: &[
            "/.",
            ".log",
            "@fs",
            "web.config",
            "wp-config",
            ".htaccess",
            ".htpasswd",
            "config.php",
            "settings.php",
            "local.xml",
            "database.yml",
            "secrets",
            "/.",
        ],
        pattern: r"(?:^|/)\.(?:git|svn|hg|bzr|cvs|env|htaccess|htpasswd|ds_store|idea|vscode|aws|docker|ssh|npmrc|dockerenv|cursor|cursorignore|cursorrules|codex|claude|opencode|plandex|fabric|roo|zed|windsurf|aider\w*|continue|cline\w*|gemini|copilot|kiro|trae|github/copilot|mcp|terraform|kube|config/gcloud|boto|s3cfg|pgpass|my\.cnf|user\.ini|well-known/security)(?:$|[/.\w-])|(?:^|/)@fs/|(?:^|/)(?:web\.config|wp-config\.php|configuration\.php|localsettings\.php|local\.xml|database\.yml|secrets\.ya?ml|credentials(?:\.json)?|\.?env\.(?:local|production|prod|dev|development|backup|bak|old|save))(?:$|[/.~])|/wp-content/(?:debug|errors?|error_log)\.log$|(?:^|/)(?:error|access|debug|errors)[._-]?logs?(?:\.txt)?$|/\.?docker/secrets\b",
    },
    // ---- remote file inclusion
    RuleDef {
        id: "rfi-ip-url",
        category: Category::Rfi,
        parts: INPUT,
        triggers: &["://"],
        pattern: r"^\s*(?:https?|ftps?|php|data|file|gopher)://(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d+)?/",
    },
    RuleDef {
        id: "rfi-include-url",
        category: Category::Rfi,
        parts: INPUT,
        triggers: &["include", "require", "://", "?"],
        pattern: r#"\b(?:include|require)(?:_once)?\s*\(?\s*['"]?(?:https?|ftps?)://|^\s*(?:https?|ftps?)://[^?#]*\?+$|^\s*(?:file|ftps?|https?)\?+$"#,
    },
    RuleDef {
        id: "rfi-path-param",
        category: Category::Rfi,
        parts: INPUT,
        triggers: &["://"],
        pattern: r"^\s*(?:https?|ftps?)://\S+\.(?:php\d?|phtml|inc|txt|jsp|asp|aspx|cgi|pl|py|sh|gif\?|jpg\?)(?:\?|$)",
    },
    RuleDef {
        // Schemes that read local files through a URL fetcher (Python's
        // `local_file://`, Java's `netdoc:` and `jar:file:`, `url:file:`).
        id: "rfi-local-scheme",
        category: Category::Rfi,
        parts: INPUT,
        triggers: &["local_file:", "netdoc:", "jar:file:", "url:file:"],
        pattern: r"(?:^|[^\w])(?:local_file|netdoc|jar:file|url:file):",
    },
    RuleDef {
        // A parameter that is a URL a fetcher would open on another
        // service: a scheme that is no web page (`ftps://`, `ldap://`,
        // `smb://`). A web URL with a port passes: apps are sent those.
        id: "rfi-service-url",
        category: Category::Rfi,
        parts: parts(&[Arg, Cookie, Body]),
        triggers: &["://"],
        pattern: r"^\s*(?:(?:ftps?|sftp|tftp|smb|cifs|nfs|ldaps?|ssh|telnet|nntp|rsync|imaps?|pop3s?|acap|xri|svn|rtsp)://)",
    },
    // ---- shell command injection
    RuleDef {
        id: "rce-unix-command",
        category: Category::Rce,
        parts: INPUT_AGENT,
        triggers: &[
            ";",
            "|",
            "&",
            "`",
            "$(",
            "\n",
            "\r",
            "strace",
            "ltrace",
            "nohup",
            "sudo",
            "doas",
            "nice",
            "timeout",
            "xargs",
            "busybox",
            "env ",
            "exec ",
            "time ",
            "watch ",
            "setsid",
            "stdbuf",
            "chroot",
            "cpulimit",
            "\\",
            "ansible",
            "chef-",
            "visudo",
            "perf",
            "getent",
            "ifconfig",
            "netstat",
            "lsof",
            "dmesg",
            "printenv",
            "crontab",
            "useradd",
            "usermod",
            "userdel",
            "chattr",
            "iptables",
            "sysctl",
            "systemctl",
            "journalctl",
            "nsenter",
            "unshare",
            "setcap",
            "getcap",
            "ssh-",
            "sshpass",
            "tcpdump",
            "socat",
            "ncat",
            "netcat",
            "xxd",
            "whoami",
            "uname",
        ],
        pattern: concat!(
            r"(?:[;|&`\n\r]|\$\(|\|\||&&)\s*(?:\$\w+\s*|\$\{\w*\}\s*)*['\x22\\]?\s*(?:/(?:usr/)?(?:local/)?s?bin/)?",
            unix_cmds!(),
            r"['\x22]?(?:\s|$|[;|&`<>)'\x22/,+]|\$\{?ifs)|(?:[;|&`\n\r]|\$\(|\|\||&&)\s*(?:\$\w+\s*|\$\{\w*\}\s*)*['\x22\\]?\s*(?:/(?:usr/)?(?:local/)?s?bin/)?",
            unix_weak_cmds!(),
            r"['\x22]?(?:\s*$|\s*[;|&`<>)]|\s+-|\s+[/~.$]|['\x22/,]|\$\{?ifs)|^\s*(?:strace|ltrace|nohup|sudo|doas|nice|timeout|xargs|busybox|env|exec|time|watch|setsid|stdbuf|chroot|cpulimit(?:\s+-\w+\s+\d+)?(?:\s+-\w)?)\s+(?:-\S+\s+)*",
            unix_cmds!(),
            r"\b|^\s*\\",
            unix_cmds!(),
            r"\b|^\s*(?:ansible|chef)-[a-z]+\b|^\s*(?:strace|ltrace|nohup|sudo|doas|xargs|busybox|setsid|stdbuf|chroot|time|nice|timeout|watch|env|exec)\s+",
            unix_weak_cmds!(),
            r"\s*$|^\s*(?:visudo|strace|ltrace|perf|getent|ifconfig|netstat|lsof|dmesg|printenv|crontab|useradd|usermod|userdel|chattr|iptables|sysctl|systemctl|journalctl|nsenter|unshare|setcap|getcap|ssh-keygen|ssh-copy-id|sshpass|tcpdump|socat|ncat|netcat|xxd|whoami|uname)(?:\s*$|\s+-|\s+",
            unix_cmds!(),
            r"\b|\s+",
            unix_weak_cmds!(),
            r"\s*$)|[;|&\n]\s*at\s+(?:\d{1,2}:\d{2}|now|midnight|noon|teatime)\b",
            // Commands that are also words, after a separator and with an
            // option or a path: `;cp /var/log/x y`, `|find / -perm`.
            r"|(?:[;|&`\n\r]|\$\(|\|\||&&)\s*(?:/(?:usr/)?(?:local/)?s?bin/)?(?:cp|mv|ln|mkdir|touch|find|head|more|cut|sort|uniq|diff|file|stat|ftp|tr|which|whereis|locate|export|wall|mount|bzip2|xz|zip|ifdown|ifup|route|arp|host|last|free|lsblk|lspci|lsusb|pgrep|pidof|renice|shred|split|strings|test|tty|vmstat|whatis|mail|install|chpasswd|chsh|fuser|rev|seq|shuf|timeout)\s+(?:-\w|[/~$]|\.\.?/)"
        ),
    },
    RuleDef {
        // A whole value that is a package manager or orchestrator run
        // with a subcommand and an argument (`pip3 install x`, `docker
        // run x`, `kubectl apply -f x`): a command line, not a sentence.
        id: "rce-tool-command",
        category: Category::Rce,
        parts: INPUT,
        triggers: &[
            "pip", "npm", "npx", "yarn", "pnpm", "gem ", "apt-get", "yum", "dnf", "apk", "brew", "docker", "podman",
            "kubectl", "helm", "composer", "knife", "chef",
        ],
        pattern: r"^\s*(?:sudo\s+)?(?:pip[23]?|npm|npx|yarn|pnpm|gem|apt-get|yum|dnf|apk|brew|docker|podman|kubectl|helm|composer|knife|chef)\s+(?:-\S+\s+)*(?:install|uninstall|i|add|remove|rm|run|exec|get|apply|delete|create|download|build|pull|push|update|upgrade|report|bootstrap|search|show|list|config|cp|logs|attach)\s+\S",
    },
    RuleDef {
        // A whole value that is a shell or an interpreter given a script
        // file (`rc script.sh`, `bash -x run.sh`, `source env.sh`).
        id: "rce-script-run",
        category: Category::Rce,
        parts: INPUT,
        triggers: &[
            ".sh", ".bash", ".py", ".pl", ".rb", ".js", ".php", ".lua", ".ps1", ".bat", ".cmd",
        ],
        pattern: r"^\s*(?:sh|bash|zsh|ksh|csh|tcsh|dash|fish|rc|source|\.|python[23]?|perl|ruby|node|php|lua|pwsh|powershell|cmd)\s+(?:-\S+\s+)*[\w./~\\:-]+\.(?:sh|bash|py|pl|rb|js|php|lua|ps1|bat|cmd)\s*$",
    },
    RuleDef {
        // Mail protocol commands after a line break: a value that reaches
        // an SMTP, IMAP or POP3 conversation adds commands of its own.
        // Each protocol's whole command set (RFC 5321, 9051 and its
        // extensions, 1939 and 2449), in the grammar of its lines: an
        // IMAP command after a tag (`a001`), a POP3 command with its
        // numbers or names, an SMTP verb with its argument; a command
        // that is an English word only as a whole line.
        id: "rce-mail-command",
        category: Category::Rce,
        parts: INPUT,
        triggers: &["\n", "\r"],
        pattern: r"[\r\n]\s*(?:(?:mail\s+from|rcpt\s+to)\s*:|(?:helo|ehlo|vrfy|expn|etrn|bdat|atrn)\s+\S|auth\s+(?:plain|login|cram-md5|digest-md5|xoauth2|oauthbearer|scram-sha-[\w-]+|gssapi|ntlm|external)\b|(?:[a-z]+\d+[a-z\d]*|\*)\s+(?:uid\s+)?(?:select|examine|store|fetch|login|lsub|list|create|delete|rename|append|copy|move|search|status|subscribe|unsubscribe|authenticate|logout|capability|expunge|noop|check|close|unselect|idle|namespace|enable|starttls|getquota(?:root)?|setquota|getacl|setacl|deleteacl|myrights|listrights|getmetadata|setmetadata|compress|esearch|sort|thread|id)\b|(?:retr|dele|uidl|list|top)\s+\d+(?:\s+\d+)?\s*(?:[\r\n]|$)|user\s+\S+\s*[\r\n]+\s*pass\s+\S|apop\s+\S+\s+[0-9a-f]{32}\b|(?:data|quit|rset|stat|capa|stls|starttls|noop|turn)\s*$)",
    },
    RuleDef {
        // A value that breaks out of a command line at its start (or after
        // the address or number it was meant to be: `127.0.0.1;x`) and
        // then runs a word as a command: the word is followed by what
        // follows a command (an option, a path, a variable, a redirection,
        // another separator). A word alone (`;environment`) passes. Any word, not a list: the
        // break-out is the grammar (CRS 932236's list is hundreds of
        // commands long and still incomplete). An HTML entity (`&copy;`),
        // a Markdown table row (`| name | age |`) and a tag list
        // (`rock;pop`) are no break-out.
        id: "rce-separator-command",
        category: Category::Rce,
        parts: parts(&[Arg, Cookie, Body]),
        triggers: &[";", "|", "&", "`", "$(", "\n"],
        pattern: concat!(
            r"^\s*(?:(?:\d{1,3}(?:\.\d{1,3}){3}|[a-z\d-]+(?:\.[a-z\d-]+)+|\d+)\s*)?(?:;|\|\|?|&&|&\s|`|\$\(|\r?\n)\s*(?:/[\w./-]*/)?[a-z][\w.+-]{1,30}(?:\s*(?:[;<>]|&&)|\s+#(?:\s|$)|\s+-{1,2}[a-z]|\s+[/~$]|\s+\.\.?/)",
            // Or one argument a command takes and a word does not (a
            // number, an address, a URL, an assignment) and the end of the
            // command (`;sleep 5`, `|dig x.example`, `&&dd if=/dev/zero`),
            // or two words closed by a separator (`;ps aux;`). Not after a
            // line break (text), nor closed by `|` (a Markdown table row).
            r"|^\s*(?:(?:\d{1,3}(?:\.\d{1,3}){3}|[a-z\d-]+(?:\.[a-z\d-]+)+|\d+)\s*)?(?:;|\|\|?|&&?|`|\$\()\s*(?:/[\w./-]*/)?[a-z][\w.+-]{1,30}\s+(?:(?:\d+(?:\.\d+)*|[a-z\d-]+(?:\.[a-z\d-]+)+|[a-z][\w+.-]*://\S*|[a-z_]\w*=\S*)\s*(?:$|[;&#`)])|[a-z][\w.-]*\s*[;&#`])"
        ),
    },
    RuleDef {
        id: "rce-unix-direct",
        category: Category::Rce,
        parts: parts(&[Arg, Cookie, Body]),
        triggers: &[
            "ls", "cat", "whoami", "uname", "wget", "curl", "id", "nc", "bash", "sh", "python", "perl", "chmod",
            "ifconfig", "netstat", "echo", "rm", "/bin/", "ping", "nslookup", "sleep", "ps", "env",
        ],
        pattern: r"^\s*(?:/(?:usr/)?s?bin/)?(?:ls\s+(?:-\w+|/|\.|\S+\s+\S+)|cat\s+(?:(?:/|\.\.?/)\S*|\S+\.(?:txt|conf|log|php|ini|sh|py|xml|json|yml|env)\b)\s*(?:$|[;|&<>`])|whoami\s*$|uname\s+-\w|ifconfig\b|netstat\s+-\w|(?:wget|curl)\s+(?:-\S+\s+)*(?:https?|ftp)?:?//|nc\s+(?:-\w+\s+)*[\d\w.-]+\s+\d+|(?:ba|z|k|c|tc|da)?sh\s+-(?:c|i)\b|(?:python[23]?|perl|ruby|php|node)\s+-(?:c|e|r)\b|chmod\s+(?:[0-7]{3,4}|[+-]?[ugoa]*[+-][rwxs]+)\s|rm\s+-\w*[rf]|ping\s+-[nc]\s+\d|busybox\s+\S|sleep\s+\d+\s*$|(?:whoami|uname|ifconfig|netstat|id|pwd|hostname|ls|ps)\s*(?:[;|&`]|['\x22](?:$|[^a-z]))|echo\s+\S.*(?:>|\|)|id\s*[;|&]|ps\s+(?:-?aux|-ef)\b)",
    },
    RuleDef {
        // SQLite's shell runs dot commands (`.shell`, `.system`) at the
        // start of a line: a value that reaches `sqlite3` adds its own.
        id: "rce-sqlite-dot-command",
        category: Category::Rce,
        parts: INPUT,
        triggers: &[
            ".sh",
            ".system",
            ".databases",
            ".tables",
            ".dump",
            ".schema",
            ".load",
            ".import",
            ".output",
            ".once",
            ". ",
            ".\\",
        ],
        pattern: r#"(?:^|;|\n|\\n)\s*\.\s*(?:\\?['"])?\s*(?:shell|system|sh|databases|tables|dump|schema|load|import|output|once)\b"#,
    },
    RuleDef {
        // Brace expansion with an empty first word (`{,echo,hi}`) runs the
        // words as a command; no data format starts a list with a comma.
        id: "rce-brace-expansion",
        category: Category::Rce,
        parts: INPUT,
        triggers: &["{"],
        // Or a command word first and an option, a path, an address or a
        // URL next (`{ls,-la}`, `{cat,/etc/passwd}`, `{nc,10.0.0.1,9}`):
        // brace expansion in a command's place, which no list or sort
        // spec writes (`{name,-price}` passes).
        pattern: r#"\{\s*,\s*\$?['"]?[\w./-]+['"]?\s*,|\{\s*(?:/[\w./-]*/)?[a-z][\w.+-]{0,30}\s*,\s*(?:-{1,2}[a-z\d]{1,3}\s*[,}]|[/~$]|\.\.?/|\d+(?:\.\d+){3}|[a-z]+://)"#,
    },
    RuleDef {
        // A variable assigned a value and then run as the command
        // (`c=cat&&$c $a$b`, `g=adduser;$g x`): the command word is
        // never spelled out where it runs.
        id: "rce-variable-command",
        category: Category::Rce,
        parts: INPUT,
        triggers: &["$"],
        pattern: r#"\b[a-z_]\w*=[^\s;&|]+\s*(?:;|&&|\|\||\n)\s*(?:[\s\S]*[;|&\n`]\s*)?\$\{?[a-z_]\w*\}?(?:\s+[^\s=.]|\s*$|\$)"#,
    },
    RuleDef {
        id: "rce-substitution",
        category: Category::Rce,
        parts: INPUT_AGENT,
        triggers: &[
            "$(", "`", "${", "$ifs", "<(", ">(", "$[", "$shell", "$bash", "$0", "$sh",
        ],
        pattern: concat!(
            r"\$\(\s*[\w/.$({`'\x22-]|\$\{\s*[a-z_]\w*\s*\}|\$\[|\$(?:shell|bash|0|sh)\b|`\s*(?:/\S*/)?(?:",
            unix_cmds!(),
            "|",
            unix_weak_cmds!(),
            r")\b[^`]*`|\$\{?ifs\b|\$\{(?:shell|path|home|user|pwd|ifs|env|bash|random|hostname|0|@|\*|#|!|\?|\w+(?::[-=?+]|:\s*\d+|/|#|%|\^))|\$\{\s*\w+\s*\}\s*-\w|[<>]\(\s*\w+"
        ),
    },
    RuleDef {
        id: "rce-shell-paths",
        category: Category::Rce,
        parts: INPUT_HEADERS,
        triggers: &["bin/", "dev/tcp", "dev/udp", "cmd", "powershell", "/c ", "-c ", "-e "],
        pattern: r"(?:^|[\s;|&`'\x22(=])/(?:usr/)?(?:local/)?s?bin/(?:ba|z|k|c|tc|da|fi)?sh\b|/(?:usr/)?(?:local/)?s?bin/(?:python|perl|ruby|php|nc|ncat|netcat|wget|curl|busybox|env|id|cat|ls|socat|telnet)\b|(?:^|[\s/=])(?:usr/)?(?:local/)?s?bin/[a-z][\w.-]*|/dev/(?:tcp|udp)/|\bcmd(?:\.exe)?\s*/[ck]\b|\bpowershell(?:\.exe)?\b|\b(?:ba|z|k|da)?sh\s+-c\s+['\x22]?\w|\bnc(?:at)?\s+(?:-\w+\s+)*-e\s",
    },
    RuleDef {
        id: "rce-glob-path",
        category: Category::Rce,
        parts: INPUT_HEADERS,
        triggers: &["[", "?", "*", "'", "\"", "\\", "~", "{", "!"],
        pattern: r"/[\w.-]*\[[!^]?[\w/-]*\][\w.-]*|/(?:[a-z]*(?:\?|\*|''|\x22\x22|\\)[a-z]*)+/(?:[a-z]*(?:\?|\*|''|\x22\x22|\\)?[a-z]*)+|/\?+/\?+|/\w*\?\w*/\w*\?|\b(?:c|ca|w)(?:''|\x22\x22|\\)\w+\s|^\s*~[+-]\d*\s*$|^\s*!-?\d+\s*$|(?:\w\{[\w-]*,[\w,-]*\}|\{[\w-]*,[\w,-]*\}\w)|!-\d+",
    },
    RuleDef {
        id: "rce-restricted-upload",
        category: Category::Rce,
        parts: parts(&[Filename]),
        triggers: &[
            ".ht",
            "wp-config",
            "web.config",
            ".user.ini",
            ".env",
            "settings",
            "local.xml",
            ".yml",
            ".yaml",
            "acpi",
            "authorized_keys",
            ".bash",
            ".profile",
            ".ssh",
        ],
        pattern: r"(?:^|/)(?:\.ht\w+|wp-config[\W_]?php.*|web\.config|\.user\.ini|\.env(?:\.\w+)?|(?:default\.)?settings(?:\.local)?\.php|local\.xml|(?:config(?:_\w+)?|parameters|routing|security|services)\.ya?ml|acpi|authorized_keys|\.bash\w*|\.profile|\.ssh\w*)\s*$",
    },
    RuleDef {
        // Bash imports a function from a variable whose value starts with
        // `() {` (after `=` or a quote in a payload that spells the
        // variable out); a function defined in a command's place (`f(){
        // f|f& };f`, a fork bomb) is the shell's too. A `() {` after
        // another word is code of another language (`fn main() {`,
        // `fun main() {`), which no shell parses.
        id: "rce-shellshock",
        category: Category::Rce,
        parts: ANY,
        triggers: &["()"],
        pattern: r"(?:^|[=\x22'(])\s*\(\s*\)\s*\{|(?:^|[;&|\n`]|\$\()\s*(?:function\s+)?[\w.:-]+\s*\(\s*\)\s*\{",
    },
    RuleDef {
        id: "rce-alias",
        category: Category::Rce,
        parts: INPUT,
        triggers: &["alias"],
        pattern: r"\balias\s+(?:[-+]\S*\s+)*[\w.-]+\s*=",
    },
    RuleDef {
        id: "rce-windows-for-if",
        category: Category::Rce,
        parts: INPUT,
        triggers: &["for", "if"],
        pattern: r#"\bfor\s+(?:/[dlfr]\s+)*(?:[a-z]:\S*\s+|"[^"]*"\s+)?%%?\S*\s+in\s*\(|\bif(?:\s+|\s*/i\s*)(?:/i\s+)?(?:not\s+)?(?:exist\s+\S|defined\s+\w|errorlevel\s+\d|cmdextversion\s+\d)|\bif(?:\s+|\s*/i\s*)(?:/i\s+)?(?:not\s+)?(?:"[^"]*"|%[\w~]+%?|\S*%\S*|\(?\s*\S+)\s*(?:==|\b(?:equ|neq|lss|leq|gtr|geq)\b)\s*\S"#,
    },
    RuleDef {
        id: "rce-windows-command",
        category: Category::Rce,
        parts: INPUT_HEADERS,
        triggers: &[";", "|", "&", "`", "\n", "\r", "%comspec%", "cmd"],
        pattern: concat!(
            r"(?:[;|&`\n\r]|\|\||&&)\s*(?:[a-z]:\\(?:windows\\)?(?:system32\\)?)?",
            win_cmds!(),
            r"(?:$|[\s;|&<>/^\x22'`])|(?:[;|&`\n\r]|\|\||&&)\s*",
            win_weak_cmds!(),
            r"(?:\s*$|\s+/\w|\s*[<>|&])"
        ),
    },
    RuleDef {
        id: "rce-windows-direct",
        category: Category::Rce,
        parts: parts(&[Arg, Cookie, Body]),
        triggers: &[
            "cmd",
            "powershell",
            "certutil",
            "bitsadmin",
            "regsvr32",
            "rundll32",
            "wmic",
            "mshta",
            "cscript",
            "wscript",
            "vssadmin",
            "wevtutil",
            "schtasks",
            "netsh",
        ],
        // `cmd` runs a command only with `/c` or `/k` (`CMD ["node",
        // "app.js"]` is a Dockerfile's line); the others take one as is.
        pattern: r"^\s*(?:[a-z]:\\(?:windows\\)?(?:system32\\)?)?(?:cmd(?:\.exe)?(?:\s+/|\s*$)|(?:cmd\.exe|powershell(?:\.exe)?|certutil|bitsadmin|regsvr32|rundll32|wmic|mshta|cscript|wscript|vssadmin|wevtutil|schtasks|netsh)(?:\s+\S|$))",
    },
    RuleDef {
        id: "rce-powershell",
        category: Category::Rce,
        parts: INPUT_HEADERS,
        triggers: &[
            "invoke-",
            "iex",
            "-enc",
            "new-object",
            "downloadstring",
            "downloadfile",
            "start-process",
            "get-",
            "set-",
            "-executionpolicy",
            "frombase64string",
            "[system.",
            "add-type",
            "-noprofile",
            "-windowstyle",
        ],
        pattern: r"\binvoke-(?:expression|webrequest|command|item|restmethod|wmimethod|shellcode|mimikatz)\b|\biex\s*[\(\x22'$]|-enc(?:odedcommand)?\s+[a-z0-9+/=]{8,}|\bnew-object\s+(?:-\w+\s+)?(?:system\.)?net\.(?:webclient|sockets)|\.download(?:string|file|data)\s*\(|\bstart-process\b|\b(?:get|set|remove|new)-(?:childitem|content|process|service|wmiobject|itemproperty|localuser|acl|executionpolicy|mppreference)\b|-executionpolicy\s+bypass|\[(?:system\.)?convert\]::frombase64string|\[system\.(?:reflection|io|net|text|diagnostics)\.|\badd-type\b|-noprofile\b|-windowstyle\s+hidden",
    },
    // ---- PHP
    RuleDef {
        id: "php-open-tag",
        category: Category::Php,
        parts: INPUT_AGENT,
        triggers: &["<?", "php]", "php}"],
        pattern: r"<\?(?:php[\s(/]|=|\s)|[\[{]\s*[/\\]?\s*php\s*[\]}]",
    },
    RuleDef {
        id: "php-wrapper",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &["://"],
        pattern: r"\b(?:php|phar|zlib|glob|expect|data|compress\.zlib|compress\.bzip2|zip|rar|ogg|ssh2(?:\.\w+)?)://",
    },
    RuleDef {
        id: "php-function-call",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &["("],
        pattern: concat!(
            r"(?:^|[^\w$.>-])",
            php_fns!(),
            r"(?:\s*(?:/\*[\s\S]*?\*/|#[^\n]*\n|//[^\n]*\n))*\s*\(\s*(?:\)|['\x22$\w@\\(\[])|(?:^|[^\w$.>-])",
            php_fns!(),
            r"\(\s*$|['\x22]\s*",
            php_fns!(),
            r"\s*['\x22]\s*\(|(?:fsockopen|gzinflate|gzuncompress|gzdecode|bzdecompress|bzopen|str_rot13|base64_decode|shell_exec|proc_open|pcntl_exec|passthru|phpinfo|create_function|call_user_func\w*|move_uploaded_file|file_put_contents|file_get_contents|show_source|highlight_file|assert_options|escapeshell\w+)\s*\("
        ),
    },
    RuleDef {
        id: "php-common-function",
        category: Category::Php,
        parts: INPUT,
        triggers: &["("],
        pattern: r"(?:^|[^\w$.>-])(?:date|time|link|touch|trim|constant|define|compact|exit|die|file|copy|rename|mail|header|extract|glob|sleep|print|echo|rand|chr|ord|each|list|key|next|end|current|count)(?:\((?:\)|['\x22$])|\s+\(\s*\))|\b(?:chr|ord)\(\s*\d+\s*\)",
    },
    RuleDef {
        id: "php-function-name",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &[
            "phpinfo",
            "passthru",
            "shell_exec",
            "proc_open",
            "pcntl_exec",
            "base64_decode",
            "file_put_contents",
            "file_get_contents",
            "create_function",
            "call_user_func",
            "move_uploaded_file",
            "show_source",
            "highlight_file",
            "gzinflate",
            "str_rot13",
            "fsockopen",
            "popen",
            "assert",
            "eval",
        ],
        pattern: concat!(
            r"(?:^|[\s;{}'\x22`(])(?:@?\s*)",
            php_fns!(),
            r"\s*(?:\(|['\x22]|\$|/\*)|\b(?:eval|assert|system|passthru|shell_exec|exec|popen)\s*\(\s*\$_(?:get|post|request|cookie|server)"
        ),
    },
    RuleDef {
        id: "php-superglobal",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &["$_", "$globals", "$http_", "$"],
        pattern: r"\$\s*\{\s*\$?[a-z_]\w*\s*\}|\$_(?:get|post|cookie|request|server|files|env|session)\b|\$globals\b|\$http_(?:raw_post_data|\w+_vars)\b",
    },
    RuleDef {
        id: "php-config-directive",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &[
            "=",
            "allow_url",
            "auto_prepend",
            "auto_append",
            "disable_functions",
            "open_basedir",
            "safe_mode",
            "register_globals",
            "suhosin",
            "display_errors",
            "error_log",
            "extension_dir",
            "file_uploads",
            "include_path",
            "magic_quotes",
            "memory_limit",
            "max_execution_time",
            "post_max_size",
            "upload_tmp_dir",
            "user_ini",
            "mail.add_x_header",
            "enable_dl",
            "expose_php",
            "session.",
            "mbstring.",
            "opcache.",
            "assert.",
            "output_handler",
            "upload_max_filesize",
            "log_errors",
            "html_errors",
        ],
        pattern: r"^\s*(?:extension|smtp|smtp_port|sendmail_(?:path|from)|mbstring\.\w+|pcre\.\w+|phar\.\w+|xdebug\.\w+|mail\.\w+|unserialize_callback_func|zend_extension|include_path|auto_detect_line_endings|variables_order|request_order|short_open_tag|asp_tags|precision|serialize_precision|highlight\.\w+|url_rewriter\.\w+|user_agent|default_socket_timeout|from)\s*=|\b(?:allow_url_(?:include|fopen)|auto_(?:prepend|append)_file|disable_(?:functions|classes)|open_basedir|safe_mode(?:_\w+)?|register_globals|suhosin\.\w+|display_(?:startup_)?errors|error_log|extension_dir|file_uploads|include_path|magic_quotes_\w+|memory_limit|max_execution_time|post_max_size|upload_tmp_dir|upload_max_filesize|user_ini\.filename|mail\.add_x_header|enable_dl|expose_php|session\.(?:save_path|save_handler|use_trans_sid|serialize_handler|upload_progress\.\w+)|mbstring\.func_overload|opcache\.\w+|assert\.(?:active|callback)|output_handler|log_errors|html_errors|default_charset|zend\.\w+)\s*=",
    },
    RuleDef {
        id: "php-serialized-object",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &[":{", ":\""],
        pattern: r#"\b[oc]:\+?\d+:"[\w\\]+":\+?\d+:\{|\ba:\+?\d+:\{\s*(?:[is]:\+?\d+[:;]|\})|^\s*s:\d+:".*";?\s*$"#,
    },
    RuleDef {
        id: "php-variable-call",
        category: Category::Php,
        parts: INPUT,
        triggers: &["$"],
        pattern: r#"\$+\s*(?:\{[^}]+\}|[a-z_][\w]*)(?:(?:\s|/\*.*?\*/|#[^\n]*\n|//[^\n]*\n)*(?:\[[^\]]+\]|\{[^}]+\}))*(?:\s|/\*.*?\*/|#[^\n]*\n|//[^\n]*\n)*\(\s*(?:\)|['"$\w@(])|\$\s*\{\s*['"(\w$][^}]*\}\s*\("#,
    },
    RuleDef {
        id: "php-callable-string",
        category: Category::Php,
        parts: INPUT,
        triggers: &[")(", ")", "](", "}("],
        pattern: r#"(?:\)|\]|['"])\s*\(\s*['"]?[^()]*['"]?\s*\)\s*;|\(\s*['"]?\s*[a-z_][\w\\]*\s*['"]?(?:\s*\.\s*['"]?[a-z_]+['"]?)*\s*\)(?:\s*(?:\[\s*['"]?\w*['"]?\s*\]|\{[^}]{0,60}\}))*\s*\(\s*['"$\w]|\(\s*\(?\s*['"]?\w+['"]?\s*\)?(?:\s*\.\s*\(?\s*['"]?\w+['"]?\s*\)?)+\s*\)\s*\(\s*[@'"$]|\(\s*\[\s*['"]?[a-z_]\w*['"]?\s*\](?:\s*\[\s*\d+\s*\])+\s*\)(?:\s*\{[^}]{0,60}\})*\s*\("#,
    },
    RuleDef {
        id: "php-string-concat-call",
        category: Category::Php,
        parts: INPUT,
        triggers: &["'.'", "\".\"", "'.\"", "\".'"],
        pattern: r#"['"]\w+['"]\s*\.\s*['"]\w+['"](?:\s*\.\s*['"]\w+['"])*\s*\)?\s*\("#,
    },
    RuleDef {
        // A call to a function of one of PHP's extensions, which name
        // their functions with a prefix (`pg_`, `odbc_`, `sodium_`,
        // `array_`...): the prefix names PHP, the parenthesis a call.
        id: "php-extension-call",
        category: Category::Php,
        parts: INPUT_PATH,
        triggers: &["_"],
        pattern: r"(?:^|[^\w$.>-])(?:array|pg|mysqli?|mssql|odbc|sodium|openssl|curl|posix|proc|pcntl|stream|socket|ftp|ldap|imap|mb|iconv|dba|oci|sqlite|ini|func|preg|ob|gz|bz|ctype|spl|apache|shmop|sem|shm|msg|ssh2|xmlrpc|libxml|simplexml|xsl|gmp|bc|mcrypt|mhash|zend|php|highlight|call_user|fastcgi|opcache|readline|finfo|exif|iptc|image|imagick|intl|grapheme|idn|cubrid|ibase|fbird|db2|sybase|inotify|runkit|uopz|xdebug)_[a-z0-9_]+\s*\(",
    },
    RuleDef {
        id: "php-upload",
        category: Category::Php,
        parts: parts(&[Filename]),
        triggers: &[".ph", ". ph", ".inc", ".htaccess", ".user.ini", ".sess", "sess_"],
        pattern: r"\.\s*(?:php\d*|phtml|phar|pht|phps|pgif|shtml|inc)\.*\s*$|\.\s*(?:php\d*|phtml|phar|pht)\.[a-z0-9]+\.*$|(?:^|/)\.(?:htaccess|user\.ini)$|^sess_\w+|\.sess\.",
    },
    RuleDef {
        id: "php-stream",
        category: Category::Php,
        parts: INPUT_HEADERS,
        triggers: &["php://"],
        pattern: r"php://(?:stdin|stdout|stderr|input|output|fd|memory|temp|filter)",
    },
    // ---- Java
    RuleDef {
        id: "java-jndi-lookup",
        category: Category::Java,
        parts: ANY,
        triggers: &["${"],
        pattern: r"\$\{[^}]{0,40}\$\{|\$\{\s*(?:jndi|lower|upper|env|sys|java|date|main|base64|ctx|spring|k8s|docker|log4j|bundle|web|marker|map|sd|event|jvmrunargs|script|dns|ldap|rmi|corba|iiop|nis|nds)\s*:|\$\{::-",
    },
    RuleDef {
        id: "java-class",
        category: Category::Java,
        parts: ANY,
        triggers: &[
            "java.",
            "javax.",
            "org.apache",
            "org.omg",
            "com.ibm",
            "weblogic",
            "org.jboss",
            "net.sf.json",
            "fastjson",
            "jackson",
            "com.sun",
            "com.opensymphony",
            "org.springframework",
            "org.codehaus",
            "com.thoughtworks",
            "bsh.",
            "groovy.",
            "com.mchange",
            "org.hibernate",
            "sun.",
            "jdk.",
        ],
        pattern: r"\bjava\.(?:[a-z_$][\w$]*\.){1,5}(?:runtime|processbuilder|processimpl|unixprocess|classloader|urlclassloader|scriptenginemanager|objectinputstream)\b|\bjava\.lang\.(?:runtime|process(?:builder|impl)?|class(?:loader)?|system|thread(?:group)?|reflect|invoke|object|string(?:builder|buffer)?|integer|number|enum|compiler|module|securitymanager|instrument|management|ref)\b|\bjava\.(?:io|util|net|nio|beans|rmi|security|sql|text|math|awt|applet|time|naming)\.\w|\bjava\.(?:runtime|processbuilder|system)\b|\borg\.apache\.commons\b|\bjavax\.(?:script|naming|management|xml|el|swing|imageio|sql|crypto)\b|\borg\.apache\.(?:commons\.(?:collections|beanutils|fileupload|io)|xalan|xbean|struts2?|tomcat|log4j|catalina|myfaces|wicket|naming|jasper|batik|velocity|ibatis)\b|\bcom\.sun\.(?:org\.apache|rowset|jndi|syndication|corba|management|script)\b|\bcom\.opensymphony\.xwork2\b|\borg\.springframework\.(?:context|beans|core|aop|jndi|transaction|web)\b|\borg\.codehaus\.groovy\b|\bcom\.thoughtworks\.xstream\b|\bbsh\.(?:interpreter|xthis)\b|\bgroovy\.(?:util|lang)\b|\bcom\.mchange\.v2\b|\borg\.hibernate\.\w|\bsun\.(?:misc|reflect|rmi)\.\w|\bjdk\.(?:nashorn|jshell)\b|\borg\.omg\.\w|\bcom\.ibm\.(?:ws|websphere)\.\w|\bweblogic\.\w|\borg\.jboss\.\w|\bnet\.sf\.json\b|\bcom\.alibaba\.fastjson\b|\bcom\.fasterxml\.jackson\.databind\b",
    },
    RuleDef {
        id: "java-process",
        category: Category::Java,
        parts: ANY,
        triggers: &[
            "processbuilder",
            "getruntime",
            "runtime",
            "transformer",
            "closure",
            "factory",
            "ognl",
            "classloader",
            "forname",
            "getclass",
            "invoke",
            "newinstance",
            "scriptengine",
            "unsafe",
        ],
        pattern: r"\bprocessbuilder\b|\bgetruntime\s*\(|\bruntime\s*\.\s*(?:getruntime|exec)\b|\b(?:clone|chained|constant|instantiate|invoker|map|string|predicate|switch|closure|factory)transformer\b|\b(?:instantiate|prototypeclone|prototypeserialization|constant|reflection)factory\b|\b(?:while|for|if|switch|chained|transformer)closure\b|#_memberaccess|@ognl\b|\bognlcontext\b|\bclassloader\b.{0,40}\b(?:loadclass|defineclass|getresource)\b|\bclass\s*\.\s*forname\s*\(|\bgetclass\s*\(\s*\)\s*\.\s*(?:forname|getclassloader|getmethod)|\.getmethod\s*\(.{0,60}\.invoke\s*\(|\.newinstance\s*\(\s*\)\s*\.\s*\w+\s*\(|\bscriptenginemanager\b|\bsun\.misc\.unsafe\b",
    },
    RuleDef {
        id: "java-deserialization",
        category: Category::Java,
        parts: ANY,
        triggers: &["ro0ab", "aced0005", "\u{ac}\u{ed}", "h4siaaaaaaaa", "rO0"],
        pattern: r"\bro0ab[a-z0-9+/]|\baced0005\b|\x{ac}\x{ed}\x{00}\x{05}|^h4siaaaaaaaa",
    },
    RuleDef {
        id: "java-jsp-upload",
        category: Category::Java,
        parts: parts(&[Filename]),
        triggers: &[".js", ". js", "jsp"],
        pattern: r"\.\s*jsp[xf]?\s*\.*\s*$|\.jspx?\.",
    },
    RuleDef {
        id: "java-el-injection",
        category: Category::Java,
        parts: INPUT_HEADERS,
        triggers: &["#{", "%{", "${"],
        pattern: r"[#%$]\{\s*(?:.{0,80}(?:getclass|forname|getruntime|exec\s*\(|processbuilder|#_memberaccess|@java\.|new\s+java|\.class\b|getmethod|invoke))",
    },
    // ---- Node.js
    RuleDef {
        id: "nodejs-code",
        category: Category::Nodejs,
        parts: INPUT_HEADERS,
        triggers: &[
            "require",
            "child_process",
            "process",
            "nd_func",
            "constructor",
            "eval",
            "function(",
            "import(",
            "global",
            "module.",
        ],
        pattern: r#"\bfunction\s*\(\s*['"`][^'"`]*\b(?:process|require|global(?:this)?)\b|\bglobal(?:this)?\s*(?:\.\s*process\b|\[\s*['"`]process)|\brequire\s*(?:\(|\[)|\bchild_process\b|\bprocess\s*(?:\.\s*(?:env|mainmodule|binding|exit|kill|dlopen|argv|cwd|chdir|execpath|versions|getuid|setuid|memoryusage|emitwarning|stdout|stderr|stdin)\b|\[\s*['"`])|_\$\$nd_func\$\$_|\bconstructor\s*(?:\.|\[\s*['"`]?)\s*constructor\b|\beval\s*\(\s*(?:string\.fromcharcode|atob|buffer|unescape|decodeuricomponent|require|process|['"`])|\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{.*\}\s*\(\s*\)|\bimport\s*\(\s*['"`](?:child_process|fs|net|vm|os|http|worker_threads|node:)|\bglobal\s*\.\s*(?:process|require)|\bmodule\s*\.\s*(?:constructor|require|children)\b|\bthis\s*\.\s*constructor\s*\.\s*constructor"#,
    },
    RuleDef {
        // Node's other ways to run code or reach the file system and
        // processes without `require`: the `vm` module, a string built
        // into a `Function` and called, the synchronous `child_process`
        // and `fs` calls. (A string handed to a timer is `xss-dom`.)
        id: "nodejs-runtime",
        category: Category::Nodejs,
        parts: INPUT_HEADERS,
        triggers: &["vm.", "sync", "fs.", "execfile", "function", "spawn"],
        pattern: r#"\bvm\s*\.\s*(?:runin(?:new|this)?context|compilefunction|script|createcontext|sourcetextmodule)\b|\bfunction\s*\(\s*(?:['"`][^'"`]*['"`]\s*,\s*)*['"`][^'"`]*['"`]\s*\)\s*\(|\b(?:execsync|spawnsync|execfilesync|execfile)\s*\(|\bspawn\s*\(\s*['"`](?:/(?:usr/)?bin/)?(?:ba|z|da|k)?sh['"`]|\bfs\s*\.\s*(?:readfile|writefile|appendfile|readdir|unlink|rmdir|rm|symlink|chmod|chown|open|createreadstream|createwritestream|copyfile|rename|mkdir)(?:sync)?\s*\("#,
    },
    RuleDef {
        id: "nodejs-proto-pollution",
        category: Category::Nodejs,
        parts: INPUT_HEADERS,
        triggers: &["__proto__", "prototype", "constructor"],
        pattern: r#"__proto__|\bconstructor\s*['"]?\s*\]?\s*(?:\[\s*['"]?|\.)\s*prototype\b|\bprototype\s*(?:\[|\.)\s*(?:polluted|isadmin|__\w+__)"#,
    },
    RuleDef {
        id: "nodejs-dos",
        category: Category::Nodejs,
        parts: INPUT,
        triggers: &["while", "for("],
        pattern: r#"\bwhile\s*\(+\s*(?:!*\s*(?:true|1|infinity|\+infinity|-infinity|this|\[\]|\{\}|null|undefined|nan|''|""|0|\+0)|[-+]?infinity|[!]+\s*[^)]*|\d+)\s*\)+|\bfor\s*\(\s*;\s*;\s*\)"#,
    },
    // ---- server-side request forgery
    RuleDef {
        id: "ssrf-metadata",
        category: Category::Ssrf,
        parts: INPUT_HEADERS,
        triggers: &[
            "169.254",
            "metadata",
            "100.100.100.200",
            "fd00:ec2",
            "instance-data",
            "0xa9fea9fe",
            "2852039166",
            "0251.0376",
        ],
        pattern: r"\b169\.254\.\d{1,3}\.\d{1,3}\b|\bmetadata(?:\.google\.internal|\.packet\.net|\.azure\.com|\.tencentyun\.com)\b|\b100\.100\.100\.200\b|\[?fd00:ec2::254\]?|\binstance-data\b|\b0xa9fea9fe\b|\b2852039166\b|\b0251\.0376\.0251\.0376\b|/(?:latest/(?:meta-data|user-data|api/token)|computemetadata/v1|metadata/(?:v1|instance|identity))\b",
    },
    RuleDef {
        id: "ssrf-internal-url",
        category: Category::Ssrf,
        parts: INPUT,
        triggers: &[
            "://",
            "http:",
            "https:",
            "localhost",
            "internal",
            "127.",
            "0.0.0.0",
            "[::",
            "ip6-",
            "0x7f",
            "2130706433",
            "0177.",
        ],
        pattern: r"^\s*(?:(?:https?|ftps?|gopher|dict|ldaps?|tftp|file|jar|netdoc|sftp|smb|telnet|ws|wss)://?(?:[^@/]*@)?)?(?:localhost(?:\.localdomain)?|(?:host|gateway)\.(?:docker|containers)\.internal|kubernetes\.default(?:\.svc)?|ip6-(?:localhost|loopback)|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|0\.0\.0\.0|0x7f[0-9a-f.x]*|2130706433|0177\.0*\.0*\.0*1|\[(?:0*:)*:?0*1?\]|\[::ffff:[0-9a-f.:]+\])(?::\d+(?:/|$)|/)|^\s*(?:https?|ftps?|gopher|dict|ldaps?|tftp|file|jar|netdoc|sftp|smb|telnet|wss?)://(?:[^@/]*@)?(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1?\])(?::\d+)?$|^\s*(?:https?|ftp):(?:127\.|localhost|0\.0\.0\.0|\[)|^\s*(?:gopher|dict|ldap|tftp|jar|netdoc)://",
    },
    RuleDef {
        // An address an attacker spells so that an allow-list or a naive
        // check misses it: one number (`2130706433`), hex or octal parts,
        // short forms (`127.1`), private ranges, any IPv6 literal,
        // backslashes or enclosed/fullwidth digits in the host, the
        // `localhost.` and `*.internal` names, an `@` that moves the host.
        id: "ssrf-address-spelling",
        category: Category::Ssrf,
        parts: INPUT,
        triggers: &["://"],
        pattern: r"^\s*[a-z][a-z0-9+.-]{1,15}://(?:[^@/?#\s]*@)?(?:\d{8,10}|0x[0-9a-f]+(?:\.[0-9a-fx]+)*|(?:\d+\.){1,2}\d+|(?:\d+\.){0,3}0\d+(?:\.\d+)*|(?:10|127|0)\.\d{1,3}\.\d{1,3}\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}\.\d{1,3}|100\.(?:6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d{1,3}\.\d{1,3}|\[[0-9a-f:.%]*\]|localhost\.?|[\w.-]*\.(?:localhost|internal|localdomain|local|intranet|corp|lan)\.?|(?:[\w-]+\.)*(?:localtest\.me|lvh\.me|nip\.io|sslip\.io|xip\.io))(?:[:/?#\\]|$)|^\s*[a-z][a-z0-9+.-]{1,15}://[^/?#\s]*(?:\\|\xe2[\x91-\x93][\x80-\xbf]|\xef\xbc[\x90-\x99])|^\s*[a-z][a-z0-9+.-]{1,15}://[^/]*@\s*(?:(?:127|10|0)\.|192\.168\.|169\.254\.|localhost\b|\[)",
    },
    // ---- server-side template injection
    RuleDef {
        id: "ssti-expression",
        category: Category::Ssti,
        parts: INPUT_PATH,
        triggers: &[
            "{{",
            "{%",
            "<%",
            "#{",
            "${",
            "__class__",
            "__mro__",
            "__subclasses__",
            "__globals__",
            "__builtins__",
            "__import__",
            "*{",
            "<#",
            "freemarker",
            "?new",
        ],
        pattern: r#"<#(?:assign|import|include|list|if|macro|function|local|global|setting|attempt|visit)\b|freemarker\.template\.utility\.(?:execute|objectconstructor|jythonruntime)|\?new\s*\(\s*\)|\{\{[^}]*(?:[*+/%\[|(]|\.\w|__)[^}]*\}\}|\{%-?\s*(?:import|include|set|for|if|raw|macro|extends|load|debug|exec|python)\b|<%=?\s*[^%>]*[*+/(.\[`][^%>]*%>|<%[-=]?\s*(?:if|unless|for|each|while|end|else|elsif|endif|endfor)\b[^%>]*%>|[#$*]\{\s*\d+\s*[*+/-]\s*\d+\s*\}|#\{[^}]*(?:\(|\.\w+\()[^}]*\}|__(?:class|mro|subclasses|globals|builtins|import|init|base|bases)__"#,
    },
    // ---- LDAP injection: a value that breaks out of the filter it is put
    // in (`x)(`, `*(|(`, an extensible match with an OID); a whole filter
    // that starts with `(` is what an LDAP search form sends, as in CRS.
    RuleDef {
        id: "ldap-filter",
        category: Category::Ldap,
        parts: INPUT,
        triggers: &[")(", ")!(", ") (", ")\t(", "(&", "(|", "(!", ":=", "(("],
        pattern: r"^\s*[^(\s][^()]*\)+\s*!?\s*\(\s*(?:[&|!]|[\w.-]+\s*[~<>]?=|$)|\*\s*\)\s*\(\s*[\w|&!]|^\s*[^(\s][^()]*\(\s*[&|!]\s*\(\s*[\w.;-]+\s*[~<>]?=|^[^(]*?\b[a-z][\w;-]*(?::dn)?:\d+(?:\.\d+)+:=|\(\s*[&|!]\s*\(\s*\d+\s*=\s*\d+\s*\)|\(\s*\d+\s*=\s*\d+\s*\)\s*\)|^\s*[^(\s][^()]*\)\s*\(\s*\(\s*[&|!]?\s*[\w.-]+\s*[~<>]?=",
    },
    // ---- other injections
    RuleDef {
        id: "generic-data-uri",
        category: Category::Generic,
        parts: INPUT_HEADERS,
        triggers: &["data:"],
        pattern: r"\bdata:(?:[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,|\bdata:text/(?:html|javascript|xml)|\bdata:(?:application|image)/(?:x-)?(?:javascript|svg\+xml|xhtml|ecmascript)",
    },
    RuleDef {
        id: "generic-ruby",
        category: Category::Generic,
        parts: INPUT_HEADERS,
        triggers: &[
            "process.",
            "kernel.",
            "io.",
            "open3",
            "system(",
            "%x",
            "qx",
            "instance_eval",
            "class_eval",
            "send(",
            "marshal.load",
            "yaml.load",
            "erb.new",
            "file.",
        ],
        pattern: r"\b(?:process\s*\.\s*(?:spawn|exec|fork|kill)|kernel\s*\.\s*(?:exec|system|spawn|open|eval|fork|`)|io\s*\.\s*(?:popen|read|write|readlines|foreach|sysopen)|open3\s*\.\s*\w+|file\s*\.\s*(?:read|write|open|delete|readlines|binread)|marshal\s*\.\s*load|yaml\s*\.\s*(?:load|unsafe_load)|erb\s*\.\s*new)\s*[(\s]|(?:^|[^\w%])%x\s*[({\[<|!/]\s*[\w/.$`'\x22-]|\bqx\s*[({\[<|!/]\s*[\w/.$`'\x22-]|\b(?:instance_eval|class_eval|module_eval)\b",
    },
    RuleDef {
        // Perl runs code inside `@{[ ... ]}` when it interpolates a string.
        id: "generic-perl-interpolation",
        category: Category::Generic,
        parts: INPUT_HEADERS,
        triggers: &["@{"],
        pattern: r"@\{\s*\[",
    },
    RuleDef {
        // ORM filter names that walk relations (`user__profile__password`):
        // a filter built from client-chosen names leaks other tables.
        id: "generic-orm-traversal",
        category: Category::Generic,
        parts: parts(&[ArgName]),
        triggers: &["__"],
        pattern: r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*__[a-z][a-z0-9]*(?:_[a-z0-9]+)*__[a-z]\w*$|__(?:password|passwd|secret|token|hash|is_admin|is_staff|is_superuser)\w*$|^(?:password|passwd|secret|token|hash|is_admin|is_staff|is_superuser)\w*__",
    },
    RuleDef {
        // An ORM lookup that probes structure in an argument name
        // (`data__has_key`, `roles__contained_by`, `name__regex`): a
        // client asking which keys a JSON column has, or matching a regex
        // it chose. Plain comparisons on a field (`price__gte`) are what
        // filter APIs take, and pass.
        id: "generic-orm-lookup",
        category: Category::Generic,
        parts: parts(&[ArgName]),
        triggers: &["__"],
        pattern: r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*__(?:i?regex|has_keys?|has_any_keys|contained_by|overlap)$",
    },
    RuleDef {
        // A YAML document that builds objects when an application loads it
        // with an unsafe loader (PyYAML `!!python/object`, Psych `!ruby/`,
        // SnakeYAML `!!javax.script...`).
        id: "generic-yaml-object",
        category: Category::Generic,
        parts: INPUT_HEADERS,
        triggers: &["!!python/", "!ruby/", "!!java", "!!com.", "!!org."],
        pattern: r"!!python/(?:object|name|module|apply)|!ruby/(?:object|hash|struct|marshal)|!!(?:javax?|com|org)\.[a-z]",
    },
    // ---- protocol attacks in values
    RuleDef {
        id: "protocol-smuggling",
        category: Category::Protocol,
        parts: INPUT_HEADERS,
        triggers: &["http/", " http"],
        pattern: r"(?:^|[\r\n])\s*(?:get|post|put|head|delete|options|patch|connect|trace|propfind)\s+\S+\s+http/\d(?:\.\d)?|[\r\n]\s*http/\d(?:\.\d)?\s+\d{3}\b",
    },
    RuleDef {
        id: "protocol-response-splitting",
        category: Category::Protocol,
        parts: INPUT_HEADERS,
        triggers: &["\r", "\n", "<meta", "<html"],
        pattern: r"[\r\n]\s*(?:set-cookie2?|location|content-(?:type|length|disposition|encoding)|refresh|transfer-encoding|x-xss-protection|remote-addr|host|cookie|x-forwarded-\w+|connection|access-control-\w+(?:-\w+)*)\s*[\r\n]*\s*:|[\r\n]\s*[\r\n]?\s*<\s*(?:html|meta|body|script|head|title)\b|<\s*meta\b[^>]*http-equiv\s*=\s*['\x22]?\s*(?:refresh|set-cookie|content-type)",
    },
    RuleDef {
        id: "protocol-header-injection",
        category: Category::Protocol,
        parts: parts(&[Header, Referer, UserAgent, ArgName, Cookie]),
        triggers: &["\r", "\n"],
        pattern: r"[\r\n]",
    },
    RuleDef {
        id: "protocol-unicode-escape",
        category: Category::Protocol,
        parts: parts(&[Arg, ArgName]),
        triggers: &["\\u"],
        pattern: r"\\u[0-9a-f]{4}",
    },
];

/// A whole word that is a command (Unix or Windows, with or without its
/// `/bin/` path), for words the shell glues from pieces (see `shell`).
pub(crate) const GLUED_COMMAND: &str = concat!(
    r"^(?:/(?:usr/)?(?:local/)?s?bin/|[a-z]:\\(?:windows\\)?(?:system32\\)?)?(?:",
    unix_cmds!(),
    "|",
    unix_weak_cmds!(),
    "|",
    win_cmds!(),
    "|",
    win_weak_cmds!(),
    r"|time|nice|timeout|watch|adduser|getent|ssh-[a-z-]+|python[23]?(?:\.\d+)*)$"
);

/// A line of a fenced Markdown block that a shell runs as a command line:
/// a command word (also one that is an English word) alone, or followed
/// by a separator or an argument (`id`, `ps aux`, `cat .env`); not by
/// what code writes after a name (`ls = f()`, `env:`, `exec(`).
pub(crate) const FENCED_COMMAND: &str = concat!(
    r"^\s*(?:sudo\s+)?(?:/(?:usr/)?(?:local/)?s?bin/)?(?:",
    unix_cmds!(),
    "|",
    unix_weak_cmds!(),
    r")(?:\s*$|\s*[;|&<>]|\s+[^\s=(:])"
);

/// A command word that is no English word (Unix, with or without its
/// `/bin/` path), for a whole value read as a command line (see
/// `command_line`).
pub(crate) const LEADING_COMMAND: &str = concat!(r"^(?:/(?:usr/)?(?:local/)?s?bin/)?", unix_cmds!(), "$");
