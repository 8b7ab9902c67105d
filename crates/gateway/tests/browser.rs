//! The memory inspector in a real browser: Debian's headless `chromium`
//! driven through `chromedriver` with fantoccini, against the real gateway,
//! plugin and platform database.
//!
//! An operator picks a workspace; a workspace's person lands on their own,
//! sees the namespaces, searches, pages through 2,500 memories, forgets one,
//! sees a memory holding HTML shown as text, and sees the banner once the
//! plugin is stopped. A PNG of each state goes to `target/ui-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `CHROMIUM` and
//! `CHROMEDRIVER`): `apt-get install -y chromium chromium-driver`. Without
//! them the test fails and says so.

mod common;
mod inspector_util;

use chrono::Utc;
use common::Env;
use fantoccini::{Client, ClientBuilder, Locator};
use inspector_util::seed;
use memory_contract::MemoryKind;
use memory_gateway::auth::{self, Caller};
use memory_gateway::service::CommitMemoryV2Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

const XSS: &str = "<img src=x onerror=alert(1)>";
const SEEDED: usize = 2_500;

fn tool(env_var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} is missing: the browser test needs Debian's chromium and chromedriver. \
         Install them with `sudo apt-get update && sudo apt-get install -y chromium chromium-driver` \
         (or point {env_var} at the binary).",
        path.display()
    );
    path
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let driver = Driver { child, port };
    let status = format!("http://127.0.0.1:{port}/status");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&status).await {
            if r.status().is_success() {
                return driver;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not answer on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps.insert("unhandledPromptBehavior".to_string(), json!("ignore"));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

/// Runs `script` in the page and returns its value.
async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect("script")
}

/// Polls `script` until it returns true.
async fn until(client: &Client, what: &str, script: &str) {
    let started = Instant::now();
    loop {
        if js(client, script).await == Value::Bool(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no page is being fetched or drawn.
async fn idle(client: &Client) {
    until(
        client,
        "the list to settle",
        "return document.getElementById('list').dataset.busy === '0'",
    )
    .await;
}

async fn rows(client: &Client) -> u64 {
    js(
        client,
        "return document.querySelectorAll('#list li.memory').length",
    )
    .await
    .as_u64()
    .unwrap()
}

async fn shot(client: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    path
}

async fn write(env: &Env, ws: Uuid, content: &str, ns: String, kind: &str, ttl_h: Option<i64>) {
    let pin = content.starts_with("Prefers");
    env.gateway
        .state
        .gateway
        .commit_memory_v2(
            ws,
            CommitMemoryV2Args {
                content: Some(content.to_string()),
                namespace: Some(ns),
                kind: Some(kind.to_string()),
                expires_at: ttl_h.map(|h| (Utc::now() + chrono::Duration::hours(h)).to_rfc3339()),
                pin: Some(pin),
            },
        )
        .await
        .expect("write");
}

#[tokio::test]
async fn a_person_inspects_and_tidies_memories_in_a_real_browser() {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
    let shots = memory_testkit::venv::target_dir().join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile =
        std::env::temp_dir().join(format!("memory-inspector-chromium-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&profile).unwrap();

    let env = Env::start().await;
    let a = env.a;
    let team = format!("team:{}", a.root);
    let org = format!("org:{}", a.root);
    // A handful of varied memories for the operator's view of the sibling.
    let sibling_ns = format!("workspace:{}", a.sibling);
    write(
        &env,
        a.root,
        "Org policy: never paste customer data into prompts; use the synthetic fixtures.",
        org.clone(),
        "fact",
        None,
    )
    .await;
    write(
        &env,
        a.sibling,
        "The staging database is reset every Sunday at 02:00 UTC.",
        team.clone(),
        "fact",
        None,
    )
    .await;
    write(
        &env,
        a.sibling,
        "Checkpoint: release checklist at step 3 of 5 (tags pushed, notes pending).",
        sibling_ns.clone(),
        "checkpoint",
        Some(5),
    )
    .await;
    write(
        &env,
        a.sibling,
        "Session summary: moved billing to Postgres 15; two follow-ups open (indexes, alerts).",
        sibling_ns.clone(),
        "summary",
        Some(72),
    )
    .await;
    write(
        &env,
        a.sibling,
        "Prefers concise answers with Rust code samples.",
        sibling_ns.clone(),
        "fact",
        None,
    )
    .await;
    // The child: 2,500 memories, and one holding HTML.
    let own = format!("workspace:{}", a.child);
    let seeded = seed(
        env.plugin.url(),
        &own,
        SEEDED,
        |i| {
            if i.is_multiple_of(7) {
                MemoryKind::Summary
            } else {
                MemoryKind::Fact
            }
        },
        |i| {
            format!(
                "Build note {i}: the deploy of service {} needs flag --fast",
                i % 40
            )
        },
    )
    .await;
    write(&env, a.child, XSS, own.clone(), "fact", None).await;
    write(
        &env,
        a.child,
        "The kangaroo test fixture lives in fixtures/kangaroo.json",
        own.clone(),
        "fact",
        None,
    )
    .await;
    let own_total = SEEDED + 2;

    let driver = start_driver(&chromedriver).await;
    let client = browser(&driver, &chromium, &profile).await;
    let base = env.gateway.url.clone();

    // An operator picks a workspace.
    let admin = auth::issue(&env.secret, Caller::Admin, None);
    client
        .goto(&format!("{base}/ui#token={admin}"))
        .await
        .unwrap();
    let url = client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("token"),
        "the token stays out of the address bar: {url}"
    );
    client
        .wait()
        .for_element(Locator::Css("#workspace option"))
        .await
        .unwrap();
    idle(&client).await;
    let picker = client.find(Locator::Id("workspace")).await.unwrap();
    assert!(picker.is_displayed().await.unwrap());
    picker
        .select_by_value(&a.sibling.to_string())
        .await
        .unwrap();
    until(
        &client,
        "the sibling's memories",
        "return document.querySelectorAll('#list li.memory').length === 5 && document.getElementById('list').dataset.busy === '0'",
    )
    .await;
    let shared = js(
        &client,
        "return Array.from(document.querySelectorAll('#list li.is-shared .badge.shared')).map(n => n.textContent)",
    )
    .await;
    assert_eq!(shared, json!(["Shared with the organisation"]));
    let ttls = js(
        &client,
        "return Array.from(document.querySelectorAll('#list .ttl')).map(n => n.textContent).sort()",
    )
    .await;
    assert_eq!(ttls, json!(["expires in 2d", "expires in 4h"]));
    shot(&client, &shots, "01-admin-picks-a-workspace").await;
    client
        .find(Locator::Id("signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // A workspace's person lands on their own workspace and sees its namespaces.
    let token = env.token(a.child);
    client
        .goto(&format!("{base}/ui#token={token}"))
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#list li.memory"))
        .await
        .unwrap();
    idle(&client).await;
    assert!(!client
        .find(Locator::Id("workspace-field"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    let groups = js(
        &client,
        "return Array.from(document.querySelectorAll('#namespace optgroup')).map(g => [g.label, Array.from(g.querySelectorAll('option')).map(o => [o.value, o.textContent])])",
    )
    .await;
    assert_eq!(
        groups,
        json!([
            ["Workspace", [[own, "alpha-child"]]],
            ["Team", [[team, "alpha"]]],
            ["Organisation", [[org, "alpha (read-only)"]]],
        ]),
    );
    let modes = js(
        &client,
        "return Array.from(document.querySelectorAll('#search-mode option')).map(o => o.value)",
    )
    .await;
    assert_eq!(modes, json!(["fulltext"]), "no semantic option");
    shot(&client, &shots, "02-own-workspace-namespaces").await;

    // Search.
    client
        .find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys("kangaroo")
        .await
        .unwrap();
    client
        .find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "the search result",
        "const rows = document.querySelectorAll('#list li.memory'); return document.getElementById('list').dataset.busy === '0' && rows.length === 1 && rows[0].querySelector('.content').textContent.includes('kangaroo')",
    )
    .await;
    shot(&client, &shots, "03-search").await;
    client
        .find(Locator::Id("clear"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Page through the workspace's own namespace.
    client
        .find(Locator::Id("namespace"))
        .await
        .unwrap()
        .select_by_value(&own)
        .await
        .unwrap();
    until(
        &client,
        "the first page",
        "return document.getElementById('list').dataset.busy === '0' && document.querySelectorAll('#list li.memory').length === 250",
    )
    .await;
    let started = Instant::now();
    let mut clicks = 0;
    loop {
        idle(&client).await;
        let more = client.find(Locator::Id("more")).await.unwrap();
        if !more.is_displayed().await.unwrap() {
            break;
        }
        more.click().await.unwrap();
        clicks += 1;
        assert!(clicks <= 20, "Load more does not end");
        // Let the click's fetch start before waiting for idleness.
        until(
            &client,
            "the next page",
            &format!(
                "return document.querySelectorAll('#list li.memory').length > {} || document.getElementById('more').hidden",
                rows(&client).await - 1
            ),
        )
        .await;
    }
    idle(&client).await;
    assert_eq!(rows(&client).await as usize, own_total);
    let distinct = js(
        &client,
        "return new Set(Array.from(document.querySelectorAll('#list li.memory')).map(n => n.dataset.id)).size",
    )
    .await;
    assert_eq!(
        distinct.as_u64().unwrap() as usize,
        own_total,
        "each memory once"
    );
    let seeded_shown = js(
        &client,
        &format!(
            "const ids = new Set(Array.from(document.querySelectorAll('#list li.memory')).map(n => n.dataset.id)); return {}.every(id => ids.has(id))",
            serde_json::to_string(&seeded.iter().map(|i| i.to_string()).collect::<Vec<_>>()).unwrap()
        ),
    )
    .await;
    assert_eq!(seeded_shown, Value::Bool(true));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "paging 2,500 memories took {:?}",
        started.elapsed()
    );
    shot(&client, &shots, "04-paged-through-2500").await;

    // The memory holding HTML is text: no image element, no alert.
    let xss = js(
        &client,
        &format!(
            "const hit = Array.from(document.querySelectorAll('#list .content')).filter(n => n.textContent === {}); \
             if (hit.length) hit[0].scrollIntoView({{block: 'center'}}); \
             return [hit.length, document.querySelectorAll('img').length, hit.length ? hit[0].children.length : -1]",
            serde_json::to_string(XSS).unwrap()
        ),
    )
    .await;
    assert_eq!(xss, json!([1, 0, 0]), "shown as text, no element made");
    assert!(
        client.get_alert_text().await.is_err(),
        "no alert was opened"
    );
    shot(&client, &shots, "05-html-shown-as-text").await;

    // Forget one, with the confirmation.
    let target = seeded[1234].to_string();
    let row = client
        .find(Locator::Css(&format!("li.memory[data-id='{target}']")))
        .await
        .unwrap();
    js(
        &client,
        &format!("document.querySelector(\"li.memory[data-id='{target}']\").scrollIntoView({{block: 'center'}}); return true"),
    )
    .await;
    row.find(Locator::Css("button.forget"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let confirm = row.find(Locator::Css(".confirm")).await.unwrap();
    assert!(confirm.is_displayed().await.unwrap());
    shot(&client, &shots, "06-forget-confirmation").await;
    row.find(Locator::Css("button.confirm-yes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "the forgotten row to go",
        &format!("return document.querySelector(\"li.memory[data-id='{target}']\") === null"),
    )
    .await;
    assert_eq!(rows(&client).await as usize, own_total - 1);
    let stored = env.stored(&own).await;
    let mut left = 0;
    let plugin = common::plugin_client(env.plugin.url());
    plugin.refresh_capabilities().await.unwrap();
    let mut after = None;
    loop {
        let page = plugin.list_memories(&own, after, 1000).await.unwrap();
        left += page.memories.len();
        assert!(page.memories.iter().all(|m| m.id.to_string() != target));
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(left, own_total - 1);
    assert!(!stored.is_empty());
    shot(&client, &shots, "07-forgotten").await;

    // The plugin stops: a banner, not an empty list.
    env.plugin.shutdown().await.unwrap();
    client
        .find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "the unreachable banner",
        "return !document.getElementById('banner').hidden && document.getElementById('list').dataset.busy === '0'",
    )
    .await;
    let banner = client
        .find(Locator::Id("banner"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(banner.contains("memory store is unreachable"), "{banner}");
    assert!(!client
        .find(Locator::Id("empty"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    assert_eq!(rows(&client).await, 0);
    shot(&client, &shots, "08-plugin-unreachable").await;

    client.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
}
