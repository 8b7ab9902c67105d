//! Redaction of secrets in text before it is stored as an agent memory.
//!
//! Agents write memories from whatever they saw: shell sessions, `.env`
//! files, config snippets, HTTP requests, logs. The gateway passes every
//! memory's text through a [`Redactor`] first, so that a credential an agent
//! happened to read never lands in the memory store (and from there in
//! search results, embeddings and other agents' prompts).
//!
//! Every secret found is replaced by `[REDACTED:<CLASS>]`, where `<CLASS>` is
//! [`SecretClass::as_str`]. What surrounds the secret is kept so that the
//! memory stays useful: the name in `DB_PASSWORD=[REDACTED:PASSWORD]`, the
//! word in `Bearer [REDACTED:BEARER_TOKEN]`, the scheme, user and host in
//! `postgres://app:[REDACTED:URL_PASSWORD]@db:5432/app`.
//!
//! Classes, most specific first (when matches overlap they are merged into
//! one marker carrying the most specific class):
//!
//! | class | what |
//! |---|---|
//! | `PRIVATE_KEY` | PEM/OpenSSH/PGP private key blocks, `-----BEGIN … PRIVATE KEY-----` to `-----END … PRIVATE KEY-----` (also with literal `\n` as in JSON, or cut off without the END line) |
//! | `SLACK_WEBHOOK` | the secret path of `https://hooks.slack.com/services/…` (also `workflows/`, `triggers/`) |
//! | `URL_PASSWORD` | the password in `scheme://user:password@host` (postgres, mysql, mongodb+srv, redis, amqp, nats, mqtt, https, … any scheme); user and host are kept |
//! | `JWT` | JSON Web Tokens: `eyJ…` header, payload, signature |
//! | `ANTHROPIC_KEY` | `sk-ant-…` |
//! | `OPENAI_KEY` | `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…` |
//! | `GITHUB_TOKEN` | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36, `github_pat_…` |
//! | `STRIPE_KEY` | `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`, `pk_live_`, `pk_test_`, `whsec_` |
//! | `SLACK_TOKEN` | `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxo-`, `xapp-` |
//! | `GOOGLE_API_KEY` | `AIza` + 35 |
//! | `AWS_ACCESS_KEY` | access key ids `AKIA`/`ASIA`/`ABIA`/`ACCA` + 16 |
//! | `AWS_SECRET_KEY` | 40-character secret access keys after `aws_secret_access_key`, `AWS_SECRET_KEY`, `SecretAccessKey` and the like |
//! | `BASIC_AUTH` | the credentials in `Authorization: Basic …` |
//! | `BEARER_TOKEN` | the token after `Bearer` (the word is kept) |
//! | `PASSWORD` | the value of `*PASSWORD`, `*PASSWD`, `*_PASS`, `*PASSPHRASE` assignments, of `--password …` flags and `<password>…</password>`; the password in `curl -u user:password` |
//! | `API_KEY` | the value of `*API_KEY`, `*APIKEY`, `X-Api-Key` assignments |
//! | `TOKEN` | the value of `*TOKEN` assignments, `Authorization: token …` |
//! | `SECRET` | the value of `*SECRET`, `*SECRET_KEY`, `*ACCESS_KEY`, `*PRIVATE_KEY`, `*SIGNING_KEY`, `*ENCRYPTION_KEY`, `*MASTER_KEY`, `*SESSION_KEY`, `*CLIENT_KEY` assignments |
//! | `HIGH_ENTROPY` | any other run of 32+ base64/base64url characters that looks random: upper case, lower case and digits mixed, high Shannon entropy, not a path or identifier |
//!
//! Assignments are recognised as `NAME=value`, `NAME: value`, `NAME := value`,
//! `NAME => value`, `"NAME": "value"`, `'NAME': 'value'`, with the name in
//! any case (`password: hunter2`, `OPENAI_API_KEY="sk-…"`,
//! `?access_token=…`). Values that are clearly not secrets are left alone:
//! `${VAR}`/`$VAR` references, `{{ templates }}`, `<placeholders>`, `null`,
//! `None`, `true`, type names (`password: String`), code (`self.token`,
//! `get_password()`), names (`token: access_token`), masks (`****`).
//!
//! What is deliberately not redacted: UUIDs, git commit hashes (7–40 hex),
//! SHA-256 digests and any other pure hex string outside an assignment,
//! file paths, identifiers, URLs without a password (including long ids in
//! their paths), e-mail addresses, version strings, dates and numbers.
//!
//! Redaction is idempotent: text that already holds `[REDACTED:…]` markers
//! comes out unchanged. A [`Redactor`] compiles its patterns once; build one
//! and share it (it is `Send + Sync`), or use [`Redactor::shared`].

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use regex::{Captures, Regex};

/// The kind of secret a marker replaced. `as_str` (and `Display`) give the
/// upper-case name used in the marker, e.g. `API_KEY`.
///
/// The order of the variants is the order of precedence: when matches of two
/// classes overlap, the merged marker carries the smaller (more specific)
/// class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretClass {
    PrivateKey,
    SlackWebhook,
    UrlPassword,
    Jwt,
    AnthropicKey,
    OpenAiKey,
    GithubToken,
    StripeKey,
    SlackToken,
    GoogleApiKey,
    AwsAccessKey,
    AwsSecretKey,
    BasicAuth,
    BearerToken,
    Password,
    ApiKey,
    Token,
    Secret,
    HighEntropy,
}

impl SecretClass {
    /// Every class, in order of precedence.
    pub const ALL: [SecretClass; 19] = [
        SecretClass::PrivateKey,
        SecretClass::SlackWebhook,
        SecretClass::UrlPassword,
        SecretClass::Jwt,
        SecretClass::AnthropicKey,
        SecretClass::OpenAiKey,
        SecretClass::GithubToken,
        SecretClass::StripeKey,
        SecretClass::SlackToken,
        SecretClass::GoogleApiKey,
        SecretClass::AwsAccessKey,
        SecretClass::AwsSecretKey,
        SecretClass::BasicAuth,
        SecretClass::BearerToken,
        SecretClass::Password,
        SecretClass::ApiKey,
        SecretClass::Token,
        SecretClass::Secret,
        SecretClass::HighEntropy,
    ];

    /// The upper-case name used in markers: `[REDACTED:<name>]`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretClass::PrivateKey => "PRIVATE_KEY",
            SecretClass::SlackWebhook => "SLACK_WEBHOOK",
            SecretClass::UrlPassword => "URL_PASSWORD",
            SecretClass::Jwt => "JWT",
            SecretClass::AnthropicKey => "ANTHROPIC_KEY",
            SecretClass::OpenAiKey => "OPENAI_KEY",
            SecretClass::GithubToken => "GITHUB_TOKEN",
            SecretClass::StripeKey => "STRIPE_KEY",
            SecretClass::SlackToken => "SLACK_TOKEN",
            SecretClass::GoogleApiKey => "GOOGLE_API_KEY",
            SecretClass::AwsAccessKey => "AWS_ACCESS_KEY",
            SecretClass::AwsSecretKey => "AWS_SECRET_KEY",
            SecretClass::BasicAuth => "BASIC_AUTH",
            SecretClass::BearerToken => "BEARER_TOKEN",
            SecretClass::Password => "PASSWORD",
            SecretClass::ApiKey => "API_KEY",
            SecretClass::Token => "TOKEN",
            SecretClass::Secret => "SECRET",
            SecretClass::HighEntropy => "HIGH_ENTROPY",
        }
    }

    /// The class whose [`as_str`](Self::as_str) is `name`.
    pub fn from_name(name: &str) -> Option<SecretClass> {
        SecretClass::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for SecretClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of [`Redactor::redact`]: the text (borrowed when nothing was
/// redacted) and the class of every marker put in, in order of position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction<'a> {
    pub text: Cow<'a, str>,
    pub classes: Vec<SecretClass>,
}

impl Redaction<'_> {
    /// Whether anything was redacted.
    pub fn is_redacted(&self) -> bool {
        !self.classes.is_empty()
    }
}

/// How a rule's match is checked before it counts.
#[derive(Clone, Copy)]
enum Check {
    /// Every match counts.
    Always,
    /// `sk-…`: the body must look random.
    OpenAi,
    /// A bare `Bearer xyz`: the token must look like one, unless it follows
    /// `Authorization:`.
    Bearer,
    /// The 40 characters after an AWS secret key name must not go on.
    AwsSecret,
    /// `Authorization: <scheme> value`: not a placeholder.
    AuthHeader,
    /// `curl -u user:password`: not a placeholder or variable.
    UserPass,
}

struct Rule {
    class: SecretClass,
    regex: Regex,
    /// The capture group that is redacted (0: the whole match).
    group: usize,
    check: Check,
}

/// Compiled patterns. Build once, share freely (`Send + Sync`).
pub struct Redactor {
    rules: Vec<Rule>,
    auth_header: Regex,
    assignment: Regex,
    flag: Regex,
    /// Where the entropy rule does not look: URLs without a password,
    /// public keys and certificates, `data:` URIs.
    benign: Regex,
    marker: Regex,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// A stretch of text to replace, before merging.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    class: SecretClass,
}

const MARKER_PREFIX: &str = "[REDACTED:";

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction pattern compiles")
}

impl Redactor {
    /// Compiles every pattern. Takes a few milliseconds: do it once.
    pub fn new() -> Self {
        let rule = |class, pattern: &str, group, check| Rule {
            class,
            regex: re(pattern),
            group,
            check,
        };
        let rules = vec![
            rule(
                SecretClass::PrivateKey,
                r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|(?:(?:\r?\n|\\r\\n|\\n)[ \t]*[A-Za-z0-9+/=:,\-]+)*)",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::SlackWebhook,
                r"(?i)\bhooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*)",
                1,
                Check::Always,
            ),
            rule(
                SecretClass::UrlPassword,
                r#"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:@/?#"'<>\[\]`]*:([^\s@/"'<>`]+)@[A-Za-z0-9\[\]_.\-]"#,
                1,
                Check::Always,
            ),
            rule(
                SecretClass::Jwt,
                r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-+/]*=*",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::AnthropicKey,
                r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::OpenAiKey,
                r"\bsk-(?:(?:proj|svcacct|admin|None)-)?([A-Za-z0-9_\-]{20,})",
                0,
                Check::OpenAi,
            ),
            rule(
                SecretClass::GithubToken,
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::StripeKey,
                r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,})\b",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::SlackToken,
                r"\b(?:xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[0-9]-[A-Za-z0-9\-]{10,})",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::GoogleApiKey,
                r"\bAIza[0-9A-Za-z_\-]{35}",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::AwsAccessKey,
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
                0,
                Check::Always,
            ),
            rule(
                SecretClass::AwsSecretKey,
                r#"(?i)(?:aws[_.\- ]?secret(?:[_.\- ]?access)?(?:[_.\- ]?key)?|secret[_.\- ]?access[_.\- ]?key)\\?["']?[ \t]*(?::=|=>|[:=])[ \t]*\\?["']?([A-Za-z0-9/+]{40})"#,
                1,
                Check::AwsSecret,
            ),
            rule(
                SecretClass::Password,
                r#"(?:^|[\s'"])(?:-u|--user)(?:[ \t]+|=)["']?[^\s:"'$]+:([^\s"'@]+)"#,
                1,
                Check::UserPass,
            ),
            rule(
                SecretClass::BearerToken,
                r"(?i)\bbearer[ \t]+([A-Za-z0-9\-._~+/]+=*)",
                1,
                Check::Bearer,
            ),
        ];
        Redactor {
            rules,
            auth_header: re(
                r#"(?i)\b(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*\\?["']?(basic|token)[ \t]+([A-Za-z0-9\-._~+/]+=*)"#,
            ),
            // The name's keyword, an optional closing quote, the separator;
            // the value is read by `value_after` (captures cost far more).
            assignment: re(concat!(
                r#"(?i:api[_\-]?key|token|secret(?:[_\-]?key)?(?:[_\-]base)?|(?:access|private|signing|encryption|master|session|client)[_\-]?key|password|passwd|passphrase|[_\-]pass)"#,
                r#"(?:\\?["'])?[ \t]*(?::=|=>|[:=>])"#,
            )),
            flag: re(concat!(
                r#"(?i)(?:^|[\s'"])--?[A-Za-z0-9_\-]*?(?P<kw>api[_\-]?key|token|secret|password|passwd|passphrase)"#,
                r#"[ \t]+(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<uq>[^\s"'`;&|<>()]+))"#,
            )),
            benign: re(concat!(
                r#"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>`]+"#,
                r"|-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE|CERTIFICATE REQUEST|X509 CRL|PGP PUBLIC KEY BLOCK|PGP SIGNATURE|SSH2 PUBLIC KEY)-----[\s\S]*?-----END [A-Z0-9 ]+-----",
                r"|\b(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp[0-9]+|sk-ssh-ed25519@openssh\.com) AAAA[A-Za-z0-9+/]+=*",
                r"|\bdata:[a-z]+/[A-Za-z0-9.+\-]+(?:;[A-Za-z0-9=.\-]+)*;base64,[A-Za-z0-9+/]+=*",
            )),
            marker: re(r"\[REDACTED:[A-Z_]+\]"),
        }
    }

    /// A process-wide redactor, compiled on first use.
    pub fn shared() -> &'static Redactor {
        static SHARED: OnceLock<Redactor> = OnceLock::new();
        SHARED.get_or_init(Redactor::new)
    }

    /// Replaces every secret in `text` by `[REDACTED:<CLASS>]`. Borrows
    /// `text` when nothing is found.
    pub fn redact<'a>(&self, text: &'a str) -> Redaction<'a> {
        let mut spans = Vec::new();
        for rule in &self.rules {
            for caps in rule.regex.captures_iter(text) {
                let Some(m) = caps.get(rule.group) else {
                    continue;
                };
                if check(rule.check, &caps, text) && m.start() < m.end() {
                    spans.push(Span {
                        start: m.start(),
                        end: m.end(),
                        class: rule.class,
                    });
                }
            }
        }
        self.auth_headers(text, &mut spans);
        self.assignments(text, &mut spans);
        self.flags(text, &mut spans);
        self.blobs(text, &mut spans);
        if spans.is_empty() {
            return Redaction {
                text: Cow::Borrowed(text),
                classes: Vec::new(),
            };
        }
        let spans = self.outside_markers(text, spans);
        let spans = merge(spans);
        if spans.is_empty() {
            return Redaction {
                text: Cow::Borrowed(text),
                classes: Vec::new(),
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut classes = Vec::with_capacity(spans.len());
        let mut at = 0;
        for span in spans {
            out.push_str(&text[at..span.start]);
            out.push_str(MARKER_PREFIX);
            out.push_str(span.class.as_str());
            out.push(']');
            classes.push(span.class);
            at = span.end;
        }
        out.push_str(&text[at..]);
        Redaction {
            text: Cow::Owned(out),
            classes,
        }
    }

    /// `Authorization: Basic …` and `Authorization: token …`.
    fn auth_headers(&self, text: &str, spans: &mut Vec<Span>) {
        for caps in self.auth_header.captures_iter(text) {
            let (Some(scheme), Some(value)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            if !check(Check::AuthHeader, &caps, text) {
                continue;
            }
            let class = if scheme.as_str().eq_ignore_ascii_case("basic") {
                SecretClass::BasicAuth
            } else {
                SecretClass::Token
            };
            spans.push(Span {
                start: value.start(),
                end: value.end(),
                class,
            });
        }
    }

    /// `NAME=value` and its relatives, for secret-sounding names.
    fn assignments(&self, text: &str, spans: &mut Vec<Span>) {
        let bytes = text.as_bytes();
        for m in self.assignment.find_iter(text) {
            let found = m.as_str();
            let kw_len = found
                .bytes()
                .position(|b| b"\\\"' \t:=>".contains(&b))
                .unwrap_or(found.len());
            let kw = &found[..kw_len];
            // The name ends at the keyword (`tokenizer=` and `max_tokens=`
            // are no assignments: the separator must come next) and starts
            // wherever the word does.
            let mut key_start = m.start();
            while key_start > 0 && is_name_byte(bytes[key_start - 1]) {
                key_start -= 1;
            }
            let key = &text[key_start..m.start() + kw_len];
            let before = text[..key_start].chars().next_back();
            let class = keyword_class(kw);
            let sep = if found.ends_with(":=") || found.ends_with("=>") {
                &found[found.len() - 2..]
            } else {
                &found[found.len() - 1..]
            };
            // `<password>hunter2</password>`
            if sep == ">" && before != Some('<') {
                continue;
            }
            let Some((mut start, mut end, quoted)) = value_after(bytes, m.end()) else {
                continue;
            };
            if !quoted {
                let mut v = &text[start..end];
                // In a URL query the value ends at the next parameter.
                if matches!(before, Some('?' | '&')) {
                    v = v.split('&').next().unwrap_or(v);
                }
                end = start + strip_unbalanced_closers(v).len();
            }
            // A quoted value may carry spaces at its edges.
            while start < end && bytes[start].is_ascii_whitespace() {
                start += 1;
            }
            while end > start && bytes[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            if start >= end {
                continue;
            }
            // Markers already in the value are no part of it (redacting
            // twice changes nothing); judge what is left.
            let v = &text[start..end];
            let stripped;
            let v = if v.contains(MARKER_PREFIX) {
                stripped = self.marker.replace_all(v, "");
                stripped.trim()
            } else {
                v
            };
            if v.is_empty() || !plausible_value(key, kw, class, sep, v, quoted, &text[end..]) {
                continue;
            }
            spans.push(Span { start, end, class });
        }
    }

    /// `--password hunter2`: a command-line flag and its value.
    fn flags(&self, text: &str, spans: &mut Vec<Span>) {
        for caps in self.flag.captures_iter(text) {
            let kw = caps.name("kw").expect("kw always matches");
            let class = keyword_class(kw.as_str());
            let (value, quoted) = match (caps.name("dq"), caps.name("sq"), caps.name("uq")) {
                (Some(v), _, _) | (_, Some(v), _) => (v, true),
                (_, _, Some(v)) => (v, false),
                _ => continue,
            };
            let v = value.as_str().trim();
            if v.is_empty() || v.starts_with('-') {
                continue;
            }
            if !plausible_value(kw.as_str(), kw.as_str(), class, "=", v, quoted, "") {
                continue;
            }
            spans.push(Span {
                start: value.start(),
                end: value.end(),
                class,
            });
        }
    }

    /// Long random-looking runs of base64/base64url characters, outside
    /// URLs, public keys, certificates and `data:` URIs.
    fn blobs(&self, text: &str, spans: &mut Vec<Span>) {
        let mut benign: Option<Vec<(usize, usize)>> = None;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !is_blob_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_blob_byte(bytes[i]) {
                i += 1;
            }
            if i - start < 32 {
                continue;
            }
            // Base64 padding.
            let mut end = i;
            while end < bytes.len() && end - i < 3 && bytes[end] == b'=' {
                end += 1;
            }
            i = end;
            if !looks_random(&text[start..end]) {
                continue;
            }
            let benign = benign.get_or_insert_with(|| {
                self.benign
                    .find_iter(text)
                    .map(|u| (u.start(), u.end()))
                    .collect()
            });
            if benign.iter().any(|&(a, b)| a < end && start < b) {
                continue;
            }
            spans.push(Span {
                start,
                end,
                class: SecretClass::HighEntropy,
            });
        }
    }

    /// Cuts the parts that are already markers out of every span, so that
    /// redacting twice changes nothing.
    fn outside_markers(&self, text: &str, spans: Vec<Span>) -> Vec<Span> {
        if !text.contains(MARKER_PREFIX) {
            return spans;
        }
        let markers: Vec<(usize, usize)> = self
            .marker
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        if markers.is_empty() {
            return spans;
        }
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(spans.len());
        for span in spans {
            let mut at = span.start;
            for &(a, b) in &markers {
                if b <= at || a >= span.end {
                    continue;
                }
                push_piece(bytes, at, a.max(at), span.class, &mut out);
                at = b;
            }
            push_piece(bytes, at, span.end, span.class, &mut out);
        }
        out
    }
}

fn push_piece(
    bytes: &[u8],
    mut start: usize,
    mut end: usize,
    class: SecretClass,
    out: &mut Vec<Span>,
) {
    let junk = |b: u8| b.is_ascii_whitespace() || b"\"'`,;:)]}".contains(&b);
    while start < end && junk(bytes[start]) {
        start += 1;
    }
    while end > start && junk(bytes[end - 1]) {
        end -= 1;
    }
    if start < end {
        out.push(Span { start, end, class });
    }
}

/// Sorted, non-overlapping spans: overlapping ones become one span covering
/// all of them, with the most specific class among them.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start < last.end => {
                last.end = last.end.max(span.end);
                last.class = last.class.min(span.class);
            }
            _ => out.push(span),
        }
    }
    out
}

fn check(check: Check, caps: &Captures<'_>, text: &str) -> bool {
    match check {
        Check::Always => true,
        Check::OpenAi => {
            let body = caps.get(1).map_or("", |m| m.as_str());
            let (upper, lower, digit) = char_classes(body);
            if !(digit && lower) {
                return false;
            }
            upper || (body.len() >= 32 && body.bytes().all(|b| b.is_ascii_alphanumeric()))
        }
        Check::Bearer => {
            let token = caps.get(1).map_or("", |m| m.as_str());
            if is_placeholder(token) {
                return false;
            }
            // `Authorization: Bearer …`, `"Authorization": "Bearer …"`
            let before = text[..caps.get(0).map_or(0, |m| m.start())]
                .trim_end_matches([' ', '\t', '"', '\'', '\\']);
            let header = before
                .strip_suffix([':', '='])
                .map(|b| b.trim_end_matches([' ', '\t', '"', '\'', '\\']))
                .is_some_and(|b| {
                    b.len() >= 13
                        && b.as_bytes()[b.len() - 13..].eq_ignore_ascii_case(b"authorization")
                });
            if header {
                return token.len() >= 4;
            }
            let (upper, lower, digit) = char_classes(token);
            (token.len() >= 8 && digit && (upper || lower))
                || (token.len() >= 20 && upper && lower && looks_random_enough(token))
        }
        Check::AwsSecret => {
            let m = caps.get(1).expect("group 1");
            !text[m.end()..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
        }
        Check::UserPass => {
            let value = caps.get(1).map_or("", |m| m.as_str());
            !is_placeholder(value) && !value.starts_with(['$', '%', '{', '<'])
        }
        Check::AuthHeader => {
            let value = caps.get(2).map_or("", |m| m.as_str());
            value.len() >= 4 && !is_placeholder(value)
        }
    }
}

/// The value that starts after `at` (spaces and tabs skipped): its bounds and
/// whether it was quoted. A quoted value ends at the closing quote on the
/// same line (`\"…\"` as in JSON inside a string counts as quoted); an
/// unquoted one at white space, a quote, `,`, `;`, `<`, `>` or an escaped
/// line break (`DB_PASSWORD=abc\nTOKEN=…` in a JSON-escaped file holds two
/// assignments).
fn value_after(bytes: &[u8], mut at: usize) -> Option<(usize, usize, bool)> {
    while at < bytes.len() && matches!(bytes[at], b' ' | b'\t') {
        at += 1;
    }
    let first = *bytes.get(at)?;
    let quote_at = if first == b'\\' && bytes.get(at + 1) == Some(&b'"') {
        Some((at + 2, b'"'))
    } else if matches!(first, b'"' | b'\'' | b'`') {
        Some((at + 1, first))
    } else {
        None
    };
    if let Some((start, quote)) = quote_at {
        let len = bytes[start..]
            .iter()
            .position(|&b| b == quote || b == b'\n')?;
        if bytes[start + len] != quote {
            return None;
        }
        let mut end = start + len;
        if quote == b'"' && end > start && bytes[end - 1] == b'\\' {
            end -= 1;
        }
        return Some((start, end, true));
    }
    let start = at;
    let mut end = at;
    while end < bytes.len() {
        let b = bytes[end];
        if b.is_ascii_whitespace() || b"\"'`,;<>".contains(&b) {
            break;
        }
        if b == b'\\' {
            match bytes.get(end + 1) {
                Some(b'n' | b'r' | b't') | None => break,
                Some(next) if next.is_ascii_whitespace() => break,
                _ => {}
            }
        }
        end += 1;
    }
    (end > start).then_some((start, end, false))
}

/// The characters of base64 and base64url (the padding aside).
fn is_blob_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-')
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn keyword_class(kw: &str) -> SecretClass {
    let kw = kw.to_ascii_lowercase();
    if kw.contains("pass") {
        SecretClass::Password
    } else if kw.starts_with("api") {
        SecretClass::ApiKey
    } else if kw == "token" {
        SecretClass::Token
    } else {
        SecretClass::Secret
    }
}

fn char_classes(s: &str) -> (bool, bool, bool) {
    let mut upper = false;
    let mut lower = false;
    let mut digit = false;
    for b in s.bytes() {
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        digit |= b.is_ascii_digit();
    }
    (upper, lower, digit)
}

/// Drops `)`, `]`, `}` at the end that close nothing in the value
/// (`connect(password=hunter2)`).
fn strip_unbalanced_closers(v: &str) -> &str {
    let mut v = v;
    loop {
        let Some(last) = v.chars().last() else {
            return v;
        };
        let open = match last {
            ')' => '(',
            ']' => '[',
            '}' => '{',
            _ => return v,
        };
        let opens = v.matches(open).count();
        let closes = v.matches(last).count();
        if closes > opens {
            v = &v[..v.len() - 1];
        } else {
            return v;
        }
    }
}

/// Values that stand for a secret without being one.
fn is_placeholder(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "null",
        "nil",
        "none",
        "true",
        "false",
        "undefined",
        "empty",
        "required",
        "optional",
        "redacted",
        "hidden",
        "masked",
        "unset",
        "todo",
        "tbd",
        "n/a",
        "na",
        "default",
        "env",
        "placeholder",
    ];
    if WORDS.contains(&lower.as_str()) {
        return true;
    }
    let mut chars = v.chars();
    if let Some(first) = chars.next() {
        // `****`, `xxxxxxxx`, `....`, `<<<<`
        if v.len() >= 2 && chars.all(|c| c == first) {
            return true;
        }
    }
    if v.starts_with(MARKER_PREFIX) {
        return true;
    }
    lower.contains("your_")
        || lower.contains("your-")
        || lower.starts_with("your")
        || lower.contains("placeholder")
        || lower.contains("xxxx")
        || lower.contains("****")
        || lower.contains("...")
        || lower.contains('…')
}

/// Type names that follow `name:` in code.
fn is_type_name(v: &str) -> bool {
    const TYPES: &[&str] = &[
        "string",
        "str",
        "&str",
        "bool",
        "boolean",
        "int",
        "integer",
        "number",
        "bytes",
        "float",
        "text",
        "varchar",
        "char",
        "any",
        "object",
        "secret",
        "secretstring",
        "option",
        "vec",
        "u8",
        "u16",
        "u32",
        "u64",
        "usize",
        "i32",
        "i64",
        "uuid",
        "date",
        "optional",
    ];
    let lower = v.to_ascii_lowercase();
    TYPES.contains(&lower.as_str())
}

/// Whether `v` (the value of `key`) looks like an actual secret.
fn plausible_value(
    key: &str,
    kw: &str,
    class: SecretClass,
    sep: &str,
    v: &str,
    quoted: bool,
    after: &str,
) -> bool {
    if is_placeholder(v) {
        return false;
    }
    let first = v.as_bytes()[0];
    // References and templates: `$DB_PASSWORD`, `${X}`, `%(password)s`,
    // `{{ .Values.token }}`, `<token>`, `os.environ[...]`.
    if b"$%{<=:&*![#@(".contains(&first) && !(quoted && first == b'!' && v.len() > 1) {
        return false;
    }
    if v.contains("{{") || v.contains("${") || v.contains("$(") {
        return false;
    }
    let min_len = if class == SecretClass::Password { 3 } else { 6 };
    if v.chars().count() < min_len {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    let key_lower = key.to_ascii_lowercase();
    let key_bare = key_lower.trim_start_matches('-');
    if lower == key_bare || lower == kw.to_ascii_lowercase() {
        return false;
    }
    let (upper, lo, digit) = char_classes(v);
    let identifier = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    // `token: access_token`, `apiKey: userApiKey`, `secret=client-secret`:
    // the name of a variable, not its value.
    if !digit && identifier {
        let compound = v.contains(['_', '-', '.'])
            || (upper && lo && v[1..].bytes().any(|b| b.is_ascii_uppercase()));
        let names_secret = ["pass", "token", "secret", "key", "auth", "cred"]
            .iter()
            .any(|w| lower.contains(w));
        if compound && names_secret {
            return false;
        }
    }
    if quoted {
        return true;
    }
    // Code rather than a value: calls, indexing, field access, references.
    let head = v
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"_.:".contains(&b)))
        .map_or(v, |i| &v[..i]);
    let next = v.as_bytes().get(head.len()).copied();
    if !head.is_empty()
        && head.as_bytes()[0].is_ascii_alphabetic()
        && matches!(next, Some(b'(' | b'[' | b'{'))
    {
        return false;
    }
    let dotted = v.contains('.')
        && v.split('.').all(|part| {
            !part.is_empty()
                && part.as_bytes()[0].is_ascii_alphabetic()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        && !digit;
    if dotted {
        return false;
    }
    if sep == ":" {
        if is_type_name(v) {
            return false;
        }
        // `token: Token`, `password: SecretString`: a type, in code.
        if !digit
            && v.as_bytes()[0].is_ascii_uppercase()
            && identifier
            && !v.contains(['-', '.'])
            && lo
        {
            let humps = v.bytes().filter(|b| b.is_ascii_uppercase()).count();
            if humps <= 3 {
                return false;
            }
        }
        // Prose: `Password: reset it in the console`.
        let rest = after.trim_start_matches([' ', '\t']);
        let continues = after.len() != rest.len()
            && rest
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '(');
        if continues && !digit && !(upper && lo && v.len() >= 12) {
            return false;
        }
    }
    if sep == "=" && after.starts_with('=') {
        return false;
    }
    true
}

/// A cheap variant of [`looks_random`] for shorter tokens (no length floor).
fn looks_random_enough(s: &str) -> bool {
    shannon_entropy(s) >= 3.5 && transition_ratio(s) >= 0.35
}

/// Whether `s` (32+ characters of base64/base64url) looks like a random
/// blob rather than a hash, identifier or path.
fn looks_random(s: &str) -> bool {
    let core = s.trim_end_matches('=');
    if core.len() < 32 {
        return false;
    }
    let (upper, lower, digit) = char_classes(core);
    // Hex (git hashes, digests, trace ids) and UUIDs never have all three.
    if !(upper && lower && digit) {
        return false;
    }
    if core.contains('/') && is_path(core) {
        return false;
    }
    let entropy = shannon_entropy(core);
    // 32 random base64 characters average about 4.5 bits; English-like
    // identifiers stay around 4 or below, and switch character class
    // rarely (`HttpRequestHandlerV2`).
    entropy >= 4.0 && transition_ratio(core) >= 0.38 && hump_ratio(core) < 0.8
}

/// The share of upper-case letters followed by a lower-case one: close to 1
/// in CamelCase identifiers, about 0.4 in random text.
fn hump_ratio(s: &str) -> f64 {
    let bytes = s.as_bytes();
    let upper = bytes.iter().filter(|b| b.is_ascii_uppercase()).count();
    if upper == 0 {
        return 0.0;
    }
    let humps = bytes
        .windows(2)
        .filter(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_lowercase())
        .count();
    humps as f64 / upper as f64
}

/// A path: two or more `/`-separated parts, and every part longer than
/// three characters reads like a file or directory name.
fn is_path(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    parts.len() >= 2
        && parts.iter().filter(|p| p.len() > 3).all(|part| {
            let (upper, _, digit) = char_classes(part);
            !upper || (!digit && hump_ratio(part) >= 0.7) || transition_ratio(part) < 0.3
        })
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// How often the character class (upper, lower, digit, other) changes from
/// one character to the next: about 0.65 for random base64, under 0.4 for
/// identifiers.
fn transition_ratio(s: &str) -> f64 {
    let class = |b: u8| match b {
        b'A'..=b'Z' => 0,
        b'a'..=b'z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    };
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return 0.0;
    }
    let changes = bytes
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    changes as f64 / (bytes.len() - 1) as f64
}

#[cfg(test)]
mod tests;
