//! Race-free refresh (`EncryptedStore::refresh_with`) and `tokenvault access-token`, against a
//! real OAuth token endpoint on 127.0.0.1 that rotates refresh tokens and counts calls.

#[path = "../../tests/refresh/oauth_server.rs"]
mod oauth_server;
#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oauth_server::{Mode, OAuthServer};
use support::World;
use tokenvault::backend::MemoryBackend;
use tokenvault::{Credential, EncryptedStore, OAuthToken, RawKey, TokenField, TokenStore};

const CLIENT_ID: &str = "1000.CLIENT";
const CLIENT_SECRET: &str = "client-secret-xyz";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The URI of a fresh store on the database server named by `env_var` (isolated by
/// `isolate(uri, name)`), or `None` to skip; under `TOKENVAULT_REQUIRE_SERVICES=1` a missing
/// server fails the test.
fn server_store(env_var: &str, isolate: fn(&str, &str) -> String) -> Option<String> {
    match std::env::var(env_var) {
        Ok(uri) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Some(isolate(&uri, &format!("t_refresh_{nanos:x}")))
        }
        Err(_) if std::env::var("TOKENVAULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!(
                "TOKENVAULT_REQUIRE_SERVICES=1 but {env_var} is not set (.ci/run starts the server)"
            )
        }
        Err(_) => {
            eprintln!(
                "skipping: {env_var} is not set (run under .ci/run, which starts the server)"
            );
            None
        }
    }
}

/// A world whose store holds user `ann` with refresh token `r-0`, access token `a-0`
/// expiring at `expiry_ms`. `kind` is `sqlite`, `file`, or a server store URI.
fn world_with_token(kind: &str, expiry_ms: u64) -> World {
    let mut world = World::raw();
    if kind != "sqlite" {
        let store = if kind == "file" {
            format!("file:{}", world.path("t.tv").display())
        } else {
            kind.to_owned()
        };
        world.set("TOKENVAULT_STORE", store);
        world.tv(&["init", "--key", "env"]).run().ok();
    }
    let json = format!(
        r#"{{"user_name":"ann","client_id":"{CLIENT_ID}","client_secret":"{CLIENT_SECRET}","refresh_token":"r-0","access_token":"a-0","expiry_time":"{expiry_ms}","api_domain":"https://www.zohoapis.com"}}"#
    );
    world.save(&json);
    world
}

fn stored(world: &World) -> serde_json::Value {
    world.tv(&["get", "--user", "ann"]).run().ok().json()
}

fn access_token(world: &World, server_url: &str, extra: &[&str]) -> support::Out {
    let mut args = vec!["access-token", "--user", "ann", "--token-url", server_url];
    args.extend_from_slice(extra);
    world.tv(&args).run()
}

fn sixteen_processes_refresh_once(kind: &str) {
    let world = world_with_token(kind, 1_000); // expired in 1970
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let children: Vec<_> = (0..16)
        .map(|_| {
            let mut tv = world.tv(&["access-token", "--user", "ann", "--token-url", &server.url]);
            tv.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            tv.cmd.spawn().expect("spawn tokenvault")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout, b"a-1\n",
            "every process prints the one new token"
        );
    }
    assert_eq!(
        server.calls(),
        1,
        "exactly one refresh reached the OAuth server"
    );
    let token = stored(&world);
    assert_eq!(
        token["refresh_token"], "r-1",
        "the rotated refresh token is stored"
    );
    assert_eq!(token["access_token"], "a-1");
    assert_eq!(server.valid_refresh_tokens(), ["r-1"]);
}

#[test]
fn sixteen_processes_refresh_once_on_sqlite() {
    sixteen_processes_refresh_once("sqlite");
}

#[test]
fn sixteen_processes_refresh_once_on_the_file_backend() {
    sixteen_processes_refresh_once("file");
}

#[test]
fn sixteen_processes_refresh_once_on_postgres() {
    let isolate = |uri: &str, name: &str| {
        let sep = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{sep}schema={name}")
    };
    if let Some(store) = server_store("TOKENVAULT_TEST_POSTGRES", isolate) {
        sixteen_processes_refresh_once(&store);
    }
}

#[test]
fn sixteen_processes_refresh_once_on_mysql() {
    let isolate = |uri: &str, name: &str| {
        let sep = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{sep}table_prefix={name}_")
    };
    if let Some(store) = server_store("TOKENVAULT_TEST_MYSQL", isolate) {
        sixteen_processes_refresh_once(&store);
    }
}

#[test]
fn a_fresh_token_needs_no_call_and_one_within_the_skew_does() {
    let world = world_with_token("sqlite", now_ms() + 3_600_000);
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let out = access_token(&world, &server.url, &[]);
    out.ok();
    assert_eq!(out.lines(), ["a-0"]);
    assert_eq!(server.calls(), 0);

    let world = world_with_token("sqlite", now_ms() + 30_000); // 30 s left
    let out = access_token(&world, &server.url, &["--skew", "10"]);
    out.ok();
    assert_eq!(out.lines(), ["a-0"], "30 s left is outside a 10 s skew");
    assert_eq!(server.calls(), 0);
    let out = access_token(&world, &server.url, &[]); // default skew 60 s
    out.ok();
    assert_eq!(out.lines(), ["a-1"]);
    assert_eq!(server.calls(), 1);
    let expiry: u64 = stored(&world)["expiry_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_an_hour = now_ms() + 3_600_000;
    assert!(
        expiry.abs_diff(in_an_hour) < 60_000,
        "expires_in (seconds) stored as epoch ms"
    );
    access_token(&world, &server.url, &[]).ok();
    assert_eq!(server.calls(), 1, "the new token is fresh: no second call");
}

/// Runs `access-token` against a failing endpoint: exit 1, the message, the record unchanged,
/// no secret in the output.
fn failing_refresh(server_url: &str, extra: &[&str], message: &str) {
    let world = world_with_token("sqlite", 1_000);
    let before = stored(&world);
    let started = Instant::now();
    let out = access_token(&world, server_url, extra);
    // 8: the token endpoint's class.
    out.exits(8)
        .stderr_has(&[message])
        .no_stdout()
        .leaks_none(&["r-0", "a-0", CLIENT_SECRET]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up in bounded time"
    );
    assert_eq!(stored(&world), before, "stored record unchanged");
}

#[test]
fn endpoint_down_is_a_clear_error_and_changes_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    failing_refresh(
        &format!("http://127.0.0.1:{port}/oauth/v2/token"),
        &[],
        "unreachable",
    );
}

#[test]
fn slow_endpoint_times_out() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(Duration::from_secs(5)));
    failing_refresh(&server.url, &["--timeout", "1"], "timed out");
}

#[test]
fn invalid_grant_is_reported_and_changes_nothing() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::InvalidGrant);
    failing_refresh(&server.url, &[], "invalid_grant");
    assert_eq!(server.calls(), 1);
}

#[test]
fn malformed_answer_is_reported_and_changes_nothing() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Malformed);
    failing_refresh(&server.url, &[], "malformed");
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let world = world_with_token("sqlite", 1_000);
    access_token(&world, "http://accounts.example.com/oauth/v2/token", &[])
        .exits(2)
        .stderr_has(&["https"]);
}

#[test]
fn a_killed_lock_holder_does_not_block_the_next_caller() {
    let world = world_with_token("sqlite", 1_000);
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(Duration::from_secs(20)));
    let mut holder = world.tv(&["access-token", "--user", "ann", "--token-url", &server.url]);
    holder.cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut holder = holder.cmd.spawn().unwrap();
    // Wait until it holds the lock and waits for the endpoint.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first caller never reached the endpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    server.set_mode(Mode::Normal);
    let started = Instant::now();
    let out = access_token(&world, &server.url, &[]);
    out.ok();
    assert_eq!(out.lines(), ["a-1"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for the dead holder's lock"
    );
}

#[test]
fn threads_of_one_process_refresh_once_and_keep_an_unrotated_refresh_token() {
    let store = EncryptedStore::create(
        MemoryBackend::new(),
        &Credential::raw_key(RawKey::from_bytes([3; 32])),
    )
    .unwrap();
    let mut token = OAuthToken::new()
        .with_user_name("ann")
        .with_refresh_token("r-0")
        .with_access_token("a-0")
        .with_expiry_time(1);
    store.save_token(&mut token).unwrap();
    let calls = AtomicUsize::new(0);
    let query = OAuthToken::new().with_user_name("ann");
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let fresh = store
                    .refresh_with(&query, Duration::from_secs(60), |stored| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(
                            stored
                                .expose_field(TokenField::RefreshToken)
                                .unwrap()
                                .as_str(),
                            "r-0"
                        );
                        std::thread::sleep(Duration::from_millis(50));
                        // A server that does not rotate the refresh token.
                        Ok::<_, String>(
                            OAuthToken::new()
                                .with_access_token("a-1")
                                .with_expiry_time(now_ms() + 3_600_000),
                        )
                    })
                    .unwrap();
                assert_eq!(
                    fresh
                        .expose_field(TokenField::AccessToken)
                        .unwrap()
                        .as_str(),
                    "a-1"
                );
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stored = store.find_token(&query).unwrap().unwrap();
    assert_eq!(
        stored
            .expose_field(TokenField::RefreshToken)
            .unwrap()
            .as_str(),
        "r-0",
        "kept when not rotated"
    );

    // A refresher error leaves the record as it was and comes back as such.
    let mut expired = stored.clone().with_expiry_time(1);
    store.save_token(&mut expired).unwrap();
    let before = store.find_token(&query).unwrap();
    let err = store
        .refresh_with(&query, Duration::ZERO, |_| {
            Err::<OAuthToken, _>("invalid_grant")
        })
        .unwrap_err();
    assert!(matches!(
        err,
        tokenvault::RefreshError::Refresher("invalid_grant")
    ));
    assert_eq!(store.find_token(&query).unwrap(), before);
    let none = store.refresh_with(
        &OAuthToken::new().with_user_name("nobody"),
        Duration::ZERO,
        |t| Ok::<_, String>(t.clone()),
    );
    assert!(matches!(
        none,
        Err(tokenvault::RefreshError::Store(tokenvault::Error::NoMatch))
    ));
}

// ============================================================================================
// A hostile token endpoint (hardening review, defects 1 and 3–4)
// ============================================================================================

/// A server that answers every request with `status`, `body` and maybe a `Location`.
fn hostile(status: u16, body: &'static str, location: Option<&'static str>) -> OAuthServer {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Canned {
        status,
        body,
        location,
    });
    server
}

#[test]
fn token_urls_that_only_look_like_loopback_are_refused_before_any_request() {
    let world = world_with_token("sqlite", 1_000);
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let before = stored(&world);
    for (url, message) in [
        // userinfo: the host is example.invalid, not 127.0.0.1
        (
            format!("http://127.0.0.1:{port}@example.invalid/oauth/v2/token"),
            "user name or password",
        ),
        (
            "http://127.anything.example/oauth/v2/token".to_owned(),
            "plain http only to a loopback host",
        ),
        (
            "http://127.0.0.1.example.invalid/oauth/v2/token".to_owned(),
            "plain http only to a loopback host",
        ),
        (
            format!("https://user:pw@127.0.0.1:{port}/oauth/v2/token"),
            "user name or password",
        ),
    ] {
        access_token(&world, &url, &[])
            .exits(2)
            .stderr_has(&[message])
            .no_stdout()
            .leaks_none(&["r-0", "a-0", CLIENT_SECRET]);
    }
    assert_eq!(server.calls(), 0);
    assert_eq!(stored(&world), before);
}

#[test]
fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let elsewhere = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let target: &'static str = Box::leak(elsewhere.url.clone().into_boxed_str());
    for status in [301, 302, 307, 308] {
        let server = hostile(status, "", Some(target));
        failing_refresh(&server.url, &[], "redirect");
        assert_eq!(server.calls(), 1);
    }
    assert_eq!(
        elsewhere.calls(),
        0,
        "the refresh token and client secret were never sent where Location pointed"
    );
}

#[test]
fn a_huge_expires_in_is_refused_without_a_panic() {
    for body in [
        r#"{"access_token":"a-9","expires_in":18446744073709551615}"#,
        r#"{"access_token":"a-9","expires_in":"18446744073709551615"}"#,
        r#"{"access_token":"a-9","expires_in":315360001}"#,
    ] {
        let server = hostile(200, body, None);
        // failing_refresh asserts exit 1: a panic exits 101.
        failing_refresh(&server.url, &[], "expires_in");
    }
}

#[test]
fn control_characters_from_the_endpoint_are_refused_and_never_stored() {
    for body in [
        "{\"access_token\":\"a-\\u001b]0;pwned\\u0007\",\"expires_in\":3600}",
        "{\"access_token\":\"a-9\\r\\nfake row\",\"expires_in\":3600}",
        "{\"access_token\":\"a-9\",\"refresh_token\":\"r-\\u001b[2J\",\"expires_in\":3600}",
        "{\"access_token\":\"a-9\",\"api_domain\":\"https://x\\u0000\",\"expires_in\":3600}",
    ] {
        let server = hostile(200, body, None);
        failing_refresh(&server.url, &[], "control characters");
    }
}

#[test]
fn a_huge_skew_refreshes_instead_of_panicking() {
    let world = world_with_token("sqlite", u64::MAX / 2); // far future: fresh by any normal skew
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    access_token(&world, &server.url, &["--skew", "18446744073709551615"])
        .ok()
        .stdout_has(&["a-1"]);
    assert_eq!(
        server.calls(),
        1,
        "every token is due within an unbounded skew"
    );
}

#[test]
fn exec_hands_a_fresh_token_to_parallel_commands_and_refreshes_once() {
    let world = world_with_token("sqlite", 1_000); // expired in 1970
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let seen = world.path(&format!("seen.{i}"));
            // What the command sees: the token, and none of the store's own variables.
            let script = format!(
                "printf '%s|%s|%s' \"$ZOHO_ACCESS_TOKEN\" \"${{TOKENVAULT_KEY:-none}}\" \"${{TOKENVAULT_STORE:-none}}\" > {}",
                seen.display()
            );
            let mut tv = world.tv(&[
                "exec",
                "--user",
                "ann",
                "--token-url",
                &server.url,
                "--",
                "sh",
                "-c",
                &script,
            ]);
            tv.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            tv.cmd.spawn().expect("spawn tokenvault")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..8 {
        let seen = std::fs::read_to_string(world.path(&format!("seen.{i}"))).unwrap();
        assert_eq!(seen, "a-1|none|none", "exec {i}");
    }
    assert_eq!(server.calls(), 1, "eight execs, one refresh");

    // --env names the variable; the command's exit status is tokenvault's.
    world
        .tv(&[
            "exec",
            "--user",
            "ann",
            "--token-url",
            &server.url,
            "--env",
            "TOKEN",
            "--",
            "sh",
            "-c",
            "test \"$TOKEN\" = a-1 && exit 7",
        ])
        .run()
        .exits(7);
    world
        .tv(&["exec", "--user", "ann", "--", "/nonexistent/command"])
        .run()
        .exits(127);
    world
        .tv(&["exec", "--user", "ann", "--env", "1BAD", "--", "true"])
        .run()
        .exits(2);
    world.tv(&["exec", "--user", "ann"]).run().exits(2);
}
