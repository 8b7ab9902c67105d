use super::*;

fn r(text: &str) -> String {
    Redactor::shared().redact(text).text.into_owned()
}

fn classes(text: &str) -> Vec<SecretClass> {
    Redactor::shared().redact(text).classes
}

/// A small deterministic generator, so that the tests need no crate.
struct XorShift(u64);

impl XorShift {
    /// xorshift64*, high bits only (the low bits of plain xorshift repeat
    /// patterns that no real key generator has).
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    }

    fn string(&mut self, len: usize, alphabet: &[u8]) -> String {
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

#[test]
fn class_names_round_trip() {
    for class in SecretClass::ALL {
        assert_eq!(SecretClass::from_name(class.as_str()), Some(class));
        assert_eq!(class.to_string(), class.as_str());
        let upper = class
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_');
        assert!(upper, "{class:?}");
    }
    let mut sorted = SecretClass::ALL;
    sorted.sort();
    assert_eq!(sorted, SecretClass::ALL, "ALL is in precedence order");
}

#[test]
fn send_sync_and_default() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Redactor>();
    assert_send_sync::<Redaction<'static>>();
    let out = Redactor::default().redact("DB_PASSWORD=hunter2");
    assert!(out.is_redacted());
}

#[test]
fn nothing_found_borrows() {
    let text = "Deployed v1.2.3 at 2024-05-21, commit 3f9c2a1.";
    let out = Redactor::shared().redact(text);
    assert!(matches!(out.text, Cow::Borrowed(_)));
    assert!(!out.is_redacted());
    assert_eq!(out.text, text);
    let out = Redactor::shared().redact("");
    assert_eq!(out.text, "");
}

#[test]
fn assignment_keeps_the_name() {
    assert_eq!(r("DB_PASSWORD=hunter2"), "DB_PASSWORD=[REDACTED:PASSWORD]");
    assert_eq!(
        r("export DB_PASSWORD='hunter2'"),
        "export DB_PASSWORD='[REDACTED:PASSWORD]'"
    );
    assert_eq!(r("password: hunter2"), "password: [REDACTED:PASSWORD]");
    assert_eq!(
        r(r#"{"password": "hunter2", "user": "bob"}"#),
        r#"{"password": "[REDACTED:PASSWORD]", "user": "bob"}"#
    );
    assert_eq!(
        r("SERVICE_API_KEY=abcdef123456"),
        "SERVICE_API_KEY=[REDACTED:API_KEY]"
    );
    assert_eq!(r("CI_TOKEN := q8w7e6r5t4"), "CI_TOKEN := [REDACTED:TOKEN]");
    assert_eq!(
        r(":client_secret => 'q8w7e6r5t4'"),
        ":client_secret => '[REDACTED:SECRET]'"
    );
    assert_eq!(
        r("<password>hunter2</password>"),
        "<password>[REDACTED:PASSWORD]</password>"
    );
    assert_eq!(r("--password hunter2"), "--password [REDACTED:PASSWORD]");
    assert_eq!(
        r("curl -u admin:s3cret https://x.test"),
        "curl -u admin:[REDACTED:PASSWORD] https://x.test"
    );
    // Two assignments in a JSON-escaped env file stay two.
    assert_eq!(
        r(r"DB_PASSWORD=abc123\nAPI_TOKEN=zyx987wvu\nLOG=debug"),
        r"DB_PASSWORD=[REDACTED:PASSWORD]\nAPI_TOKEN=[REDACTED:TOKEN]\nLOG=debug"
    );
    // A URL query value ends at the next parameter.
    assert_eq!(
        r("https://x.test/cb?access_token=q8w7e6r5t4y3&state=abc"),
        "https://x.test/cb?access_token=[REDACTED:TOKEN]&state=abc"
    );
    // The specific class wins over the assignment's.
    assert_eq!(
        r("OPENAI_API_KEY=\"sk-aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7\""),
        "OPENAI_API_KEY=\"[REDACTED:OPENAI_KEY]\""
    );
}

#[test]
fn assignment_leaves_non_values_alone() {
    for text in [
        "password: ${DB_PASSWORD}",
        "DB_PASSWORD=$DB_PASSWORD",
        "password: {{ .Values.password }}",
        "OPENAI_API_KEY=<your-key-here>",
        "API_KEY=your_api_key_here",
        "password: null",
        "password = None",
        "\"password\": \"\"",
        "password: ********",
        "pub password: String,",
        "fn f(password: &str)",
        "api_key: Option<String>",
        "let token = self.token.clone();",
        "token = get_token(ctx)",
        "password = os.environ[\"DB_PASSWORD\"]",
        "token: access_token",
        "f(password=password)",
        "if token == expected { }",
        "max_tokens: 4096",
        "tokenizer=cl100k_base",
        "token: 4096",
        "Password: reset it via the admin console.",
        "DB_PASSWORD=[REDACTED:PASSWORD]",
    ] {
        assert_eq!(r(text), text, "{text:?}");
    }
}

#[test]
fn bearer_keeps_the_word() {
    assert_eq!(
        r("Authorization: Bearer q8w7e6r5t4y3u2i1o0"),
        "Authorization: Bearer [REDACTED:BEARER_TOKEN]"
    );
    assert_eq!(
        r("the client sent bearer aB3dE5fG7hI9jK1l"),
        "the client sent bearer [REDACTED:BEARER_TOKEN]"
    );
    // After `Authorization:` any token counts; elsewhere it must look like one.
    assert_eq!(
        r("Authorization: Bearer devtoken"),
        "Authorization: Bearer [REDACTED:BEARER_TOKEN]"
    );
    let prose = "Use a Bearer token; Bearer authentication is described in RFC 6750.";
    assert_eq!(r(prose), prose);
    assert_eq!(
        r("Authorization: Basic ZGVwbG95Omh1bnRlcjI="),
        "Authorization: Basic [REDACTED:BASIC_AUTH]"
    );
}

#[test]
fn pem_block_multi_line() {
    let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1y2z3\nq8w7e6r5t4y3u2i1o0pAaBbCc\n-----END RSA PRIVATE KEY-----\ndone";
    assert_eq!(r(text), "key:\n[REDACTED:PRIVATE_KEY]\ndone");
    assert_eq!(classes(text), vec![SecretClass::PrivateKey]);
    // Inside JSON, with escaped line breaks; the assignment merges into it.
    let json = r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"}"#;
    assert_eq!(r(json), r#"{"private_key": "[REDACTED:PRIVATE_KEY]"}"#);
    // Cut off before the END line: the base64 lines still go.
    let cut =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nBG5vbmUAAAAEbm9uZQAAAAAA\n";
    assert_eq!(r(cut), "[REDACTED:PRIVATE_KEY]\n");
    // Public keys and certificates are not secrets.
    let public = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq8w7e6r5t4y3u2i1o0pAaBbCcDdEeFf\n-----END PUBLIC KEY-----";
    assert_eq!(r(public), public);
    let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIq8w7e6r5t4y3u2i1o0pAaBbCcDdEeFfGg jane@laptop";
    assert_eq!(r(ssh), ssh);
}

#[test]
fn urls_keep_scheme_user_and_host() {
    assert_eq!(
        r("postgres://app:s3cr3t@db:5432/x"),
        "postgres://app:[REDACTED:URL_PASSWORD]@db:5432/x"
    );
    assert_eq!(
        r("redis://:pa55word@cache:6379/0"),
        "redis://:[REDACTED:URL_PASSWORD]@cache:6379/0"
    );
    for text in [
        "postgres://app@db:5432/x",
        "http://localhost:8080/a@b",
        "https://example.com/path?x=1#frag",
        "git@github.com:acme/repo.git",
        "ssh://git@host:22/repo",
        "mailto:ops@example.com",
    ] {
        assert_eq!(r(text), text);
    }
}

#[test]
fn overlapping_matches_become_one_marker() {
    // The JWT is also a bearer token and an assignment value.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.q8w7e6r5t4y3u2i1o0pAaBbCcDdEe";
    let text = format!("AUTH_TOKEN=\"Bearer {jwt}\"");
    let out = Redactor::shared().redact(&text);
    assert_eq!(out.text, "AUTH_TOKEN=\"[REDACTED:JWT]\"");
    assert_eq!(out.classes, vec![SecretClass::Jwt]);
    // A secret inside a longer assignment value: one marker covering both.
    let out = Redactor::shared().redact("DB_PASSWORD=\"old AKIAQ3EGU7XK2M4N6P8R pass\"");
    assert_eq!(out.text, "DB_PASSWORD=\"[REDACTED:AWS_ACCESS_KEY]\"");
    // A password URL as the value of a password assignment.
    let out = Redactor::shared().redact("DB_PASSWORD=postgres://u:p4ss@h/db");
    assert_eq!(out.classes.len(), 1);
    assert!(!out.text.contains("p4ss"));
    // Adjacent secrets stay two markers.
    let out = Redactor::shared().redact("AKIAQ3EGU7XK2M4N6P8R,AKIAZ9Y8X7W6V5U4T3S2");
    assert_eq!(
        out.text,
        "[REDACTED:AWS_ACCESS_KEY],[REDACTED:AWS_ACCESS_KEY]"
    );
    // No marker ever ends up inside another.
    let text = "token=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5 and Bearer ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";
    let out = r(text);
    assert_eq!(out.matches("[REDACTED:").count(), 2, "{out}");
    assert!(!out.contains("[REDACTED:[") && !out.contains("]]"), "{out}");
}

#[test]
fn idempotent() {
    let texts = [
        "DB_PASSWORD=hunter2 and postgres://a:b1c2d3@h/x",
        "Authorization: Bearer q8w7e6r5t4y3u2i1o0",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----",
        "PASSWORD=\"[REDACTED:PASSWORD] hunter22\"",
        "password=[REDACTED:PASSWORD]xyz",
        "[REDACTED:PASSWORD][REDACTED:TOKEN]",
        "secret: [REDACTED:SECRET]",
        "x = \"Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8Q1\"",
        "https://hooks.slack.com/services/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",
    ];
    for text in texts {
        let once = r(text);
        let twice = Redactor::shared().redact(&once);
        assert_eq!(twice.text, once, "{text:?}");
        assert!(!twice.is_redacted(), "{text:?} -> {once:?}");
    }
}

#[test]
fn entropy_rule_catches_random_blobs() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for (alphabet, len) in [(BASE64, 32), (BASE64URL, 32), (BASE64, 40), (BASE64URL, 64)] {
        let n = 2000;
        let mut caught = 0;
        for _ in 0..n {
            let blob = rng.string(len, alphabet);
            let (upper, lower, digit) = char_classes(&blob);
            if !(upper && lower && digit) {
                // Not what the rule is for (and rare: under 1% at 32).
                caught += 1;
                continue;
            }
            let out = r(&format!("value {blob} end"));
            if out == "value [REDACTED:HIGH_ENTROPY] end" {
                caught += 1;
            }
        }
        let rate = caught as f64 / n as f64;
        assert!(rate >= 0.97, "len {len}: only {rate:.3} caught");
    }
}

#[test]
fn entropy_rule_spares_hashes_ids_and_names() {
    let mut rng = XorShift(42);
    for len in [7, 12, 32, 40, 64, 128] {
        for _ in 0..200 {
            let hex = rng.string(len, HEX);
            let text = format!("commit {hex} fixed it");
            assert_eq!(r(&text), text);
            let upper = hex.to_ascii_uppercase();
            assert_eq!(r(&upper), upper);
        }
    }
    for text in [
        "550e8400-e29b-41d4-a716-446655440000",
        "7C9E6679-7425-40DE-944B-E07FC1F90AE7",
        "AbstractSingletonProxyFactoryBeanDefinitionRegistryPostProcessor2024",
        "HttpRequestHandlerFactoryBuilderV2WithRetryPolicy3",
        "getUserProfileById2024HandlerV2AsyncWithRetry3Times",
        "XMLHttpRequestUpload2ProgressEventTargetForIE11",
        "this_is_a_very_long_snake_case_identifier_with_v2_suffix",
        "/home/ubuntu/workspace/AcmePlatform2/services/api-gateway/src",
        "src/main/java/com/example/service/impl/UserAccountServiceImplTest2",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://docs.google.com/document/d/1aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT1uV2wX3yZ4aBcD/edit",
    ] {
        assert_eq!(r(text), text);
    }
}

#[test]
fn big_text_is_fast() {
    // 32 KiB of mixed prose, code and a few secrets.
    let chunk = "Deployed api-gateway v2.14.3 at 2024-05-21 (commit 3f9c2a1e8b7d4c6f0a1e2b3c4d5e6f708192a3b4); \
                 see https://github.com/acme/platform/pull/4821 and /etc/acme/config.yaml. \
                 fn handle(req: Request) -> Response { let token = req.token(); } \
                 DB_PASSWORD=hunter2 user 550e8400-e29b-41d4-a716-446655440000\n";
    let mut text = String::new();
    while text.len() < 32 * 1024 {
        text.push_str(chunk);
    }
    let redactor = Redactor::shared();
    redactor.redact(&text);
    let start = std::time::Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        let out = redactor.redact(&text);
        assert!(out.is_redacted());
    }
    let each = start.elapsed() / rounds;
    // Release builds take well under a millisecond; leave room for debug
    // builds on a busy machine.
    assert!(
        each < std::time::Duration::from_millis(100),
        "{each:?} per 32 KiB"
    );
    eprintln!("redact 32 KiB: {each:?}");
}
