//! yup-oauth2 over a tokenvault store (`integrations::yup_oauth2::TokenvaultStorage`, feature
//! `yup-oauth2`), with the real yup-oauth2 authenticator against a token endpoint on 127.0.0.1
//! that makes refresh tokens single-use and counts requests.
//!
//! The authenticator is an installed-flow one whose browser step always fails (`NoBrowser`):
//! it starts from a stored, expired token and a valid refresh token, so every success comes
//! from a refresh, and every fallback to the full flow shows up as an error.

#![cfg(feature = "yup-oauth2")]

#[path = "refresh/oauth_server.rs"]
#[allow(dead_code)]
mod oauth_server;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oauth_server::{Mode, OAuthServer};
use tokenvault::backend::{Backend, MemoryBackend};
use tokenvault::integrations::tokio::AsyncStore;
use tokenvault::integrations::yup_oauth2::{ConfigError, TokenvaultStorage};
use tokenvault::{Credential, OAuthToken, RawKey, TokenField};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::authenticator_delegate::InstalledFlowDelegate;
use yup_oauth2::storage::TokenInfo;
use yup_oauth2::{
    ApplicationSecret, CustomHyperClientBuilder, InstalledFlowAuthenticator,
    InstalledFlowReturnMethod,
};

const CLIENT_ID: &str = "1000.CLIENT";
const CLIENT_SECRET: &str = "client-secret-xyz";
const KEY: &str = "ann@example.com";
const SCOPES: [&str; 2] = ["openid", "https://www.googleapis.com/auth/drive"];
/// How long the endpoint waits before it answers: every caller has read the expired token
/// before the first answer comes back, whatever the scheduling.
const SLOW: Duration = Duration::from_millis(300);

/// The installed flow's browser step, failing: a test that reaches it has lost its refresh.
struct NoBrowser;

impl InstalledFlowDelegate for NoBrowser {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async { Err("no browser here: the refresh failed".to_owned()) })
    }
}

fn key() -> Credential {
    Credential::raw_key(RawKey::from_bytes([9; 32]))
}

fn app_secret(token_uri: &str) -> ApplicationSecret {
    ApplicationSecret {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        token_uri: token_uri.into(),
        auth_uri: "http://127.0.0.1:9/auth".into(),
        ..ApplicationSecret::default()
    }
}

enum Storage {
    Tokenvault(Box<dyn yup_oauth2::storage::TokenStorage>),
    /// yup-oauth2's own token file.
    Disk(std::path::PathBuf),
}

/// An installed-flow authenticator that reaches the endpoint over plain http: yup-oauth2's
/// default client is `https_or_http()` too, but needs TLS features; a bare hyper
/// `HttpConnector` client is all a loopback endpoint needs.
async fn authenticator(token_uri: &str, storage: Storage) -> Authenticator<HttpConnector> {
    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let builder = InstalledFlowAuthenticator::with_client(
        app_secret(token_uri),
        InstalledFlowReturnMethod::Interactive,
        CustomHyperClientBuilder::from(client),
    )
    .flow_delegate(Box::new(NoBrowser));
    let builder = match storage {
        Storage::Tokenvault(storage) => builder.with_storage(storage),
        Storage::Disk(path) => builder.persist_tokens_to_disk(path),
    };
    builder.build().await.expect("build authenticator")
}

/// The storage for [`KEY`] in `store`, refreshing at the server.
fn storage<B: Backend + 'static>(
    store: &AsyncStore<B>,
    server: &OAuthServer,
) -> TokenvaultStorage<B> {
    TokenvaultStorage::new(store.clone(), KEY, &app_secret(&server.url)).unwrap()
}

/// Saves an expired access token `a-0` with refresh token `r-0` for [`SCOPES`].
async fn seed<B: Backend + 'static>(store: &AsyncStore<B>, server: &OAuthServer) {
    seed_expiring(store, server, 1_000).await;
}

/// Saves access token `a-0`, expiring at `expiry_ms`, with refresh token `r-0`.
async fn seed_expiring<B: Backend + 'static>(
    store: &AsyncStore<B>,
    server: &OAuthServer,
    expiry_ms: u64,
) {
    let name = storage(store, server).user_name_for(&SCOPES);
    let mut token = OAuthToken::new()
        .with_user_name(name)
        .with_client_id(CLIENT_ID)
        .with_client_secret(CLIENT_SECRET)
        .with_refresh_token("r-0")
        .with_access_token("a-0")
        .with_expiry_time(expiry_ms);
    store.save_token(&mut token).await.unwrap();
}

/// Writes yup-oauth2's token file holding the same expired token.
fn seed_disk(path: &Path) {
    let token = TokenInfo {
        access_token: Some("a-0".into()),
        refresh_token: Some("r-0".into()),
        expires_at: Some(time::OffsetDateTime::from_unix_timestamp(1).unwrap()),
        id_token: None,
    };
    let json = serde_json::json!([{ "scopes": SCOPES, "token": token }]);
    std::fs::write(path, json.to_string()).unwrap();
}

/// Runs `n` concurrent `token(&SCOPES)` calls on each authenticator; the access tokens or
/// errors.
async fn concurrent_tokens(
    authenticators: &[Authenticator<HttpConnector>],
    n: usize,
) -> Vec<Result<String, String>> {
    let tasks: Vec<_> = authenticators
        .iter()
        .flat_map(|auth| (0..n).map(move |_| auth.clone()))
        .map(|auth| {
            tokio::spawn(async move {
                match auth.token(&SCOPES).await {
                    Ok(token) => Ok(token.token().unwrap_or_default().to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn stored<B: Backend + 'static>(store: &AsyncStore<B>, field: TokenField) -> Option<String> {
    let name = format!("{KEY} {} {}", SCOPES[1], SCOPES[0]);
    store
        .find_token(&OAuthToken::new().with_user_name(name))
        .await
        .unwrap()
        .and_then(|t| t.expose_field(field))
        .map(|v| v.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_token_calls_make_one_refresh_through_tokenvault() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(SLOW));
    let store = AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap();
    seed(&store, &server).await;
    let auth = authenticator(
        &server.url,
        Storage::Tokenvault(Box::new(storage(&store, &server))),
    )
    .await;

    let results = concurrent_tokens(std::slice::from_ref(&auth), 8).await;
    assert_eq!(
        results,
        vec![Ok("a-1".to_owned()); 8],
        "every caller got the one new token"
    );
    assert_eq!(
        server.calls(),
        1,
        "one refresh request reached the endpoint"
    );
    assert_eq!(
        stored(&store, TokenField::RefreshToken).await.as_deref(),
        Some("r-1")
    );
    assert_eq!(server.valid_refresh_tokens(), ["r-1"]);

    // Fresh now: served from the store without a request.
    assert_eq!(auth.token(&SCOPES).await.unwrap().token(), Some("a-1"));
    assert_eq!(server.calls(), 1);
}

/// The contrast: yup-oauth2's own storage in the same setup. Each caller finds the expired
/// token and spends the refresh token itself; one wins, the others get `invalid_grant` and
/// fall back to the browser flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yup_oauth2s_own_storage_spends_the_refresh_token_once_per_caller() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(SLOW));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("yup-tokens.json");
    seed_disk(&file);
    let auth = authenticator(&server.url, Storage::Disk(file)).await;

    let results = concurrent_tokens(&[auth], 8).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    eprintln!(
        "yup-oauth2 disk storage: {} requests, {ok} of 8 calls succeeded",
        server.calls()
    );
    assert_eq!(server.calls(), 8, "one refresh request per caller");
    assert_eq!(ok, 1, "only the first use of the refresh token succeeds");
    for failed in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            failed.contains("no browser"),
            "fell back to the full flow: {failed}"
        );
    }
}

/// Two authenticators, each with its own store handle on one SQLite file (as two processes
/// have), refresh once; over one yup-oauth2 token file, each refreshes and one loses.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authenticators_refresh_once_over_one_store_and_twice_over_one_yup_file() {
    use tokenvault::backend::SqliteBackend;

    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(SLOW));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let first = AsyncStore::create(SqliteBackend::open(&path).unwrap(), key())
        .await
        .unwrap();
    seed(&first, &server).await;
    let second = AsyncStore::open(SqliteBackend::open(&path).unwrap(), key())
        .await
        .unwrap();
    let mut authenticators = Vec::new();
    for store in [&first, &second] {
        let storage = Storage::Tokenvault(Box::new(storage(store, &server)));
        authenticators.push(authenticator(&server.url, storage).await);
    }
    let results = concurrent_tokens(&authenticators, 4).await;
    assert_eq!(results, vec![Ok("a-1".to_owned()); 8]);
    assert_eq!(server.calls(), 1);

    // yup-oauth2's token file shared by two authenticators.
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(SLOW));
    let file = dir.path().join("yup-tokens.json");
    seed_disk(&file);
    let mut authenticators = Vec::new();
    for _ in 0..2 {
        authenticators.push(authenticator(&server.url, Storage::Disk(file.clone())).await);
    }
    let results = concurrent_tokens(&authenticators, 1).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    eprintln!(
        "yup-oauth2 file, 2 authenticators: {} requests, {ok} of 2 calls succeeded",
        server.calls()
    );
    assert_eq!(server.calls(), 2);
    assert_eq!(ok, 1);
}

/// Four processes, each with its own store handle and authenticator and four concurrent
/// `token()` calls, over one SQLite store: one refresh request in all.
#[cfg(feature = "sqlite")]
#[test]
fn four_processes_refresh_once() {
    use std::process::{Command, Stdio};
    use tokenvault::backend::SqliteBackend;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::Slow(SLOW));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    runtime.block_on(async {
        let store = AsyncStore::create(SqliteBackend::open(&path).unwrap(), key())
            .await
            .unwrap();
        seed(&store, &server).await;
    });
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_entry",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_STORE, &path)
                .env(CHILD_URL, &server.url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tokens: Vec<_> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("CHILD TOKEN "))
            .collect();
        assert_eq!(tokens, ["a-1"; 4], "{stdout}");
    }
    assert_eq!(server.calls(), 1, "one refresh request from four processes");
}

#[cfg(feature = "sqlite")]
const CHILD_STORE: &str = "TOKENVAULT_YUP_CHILD_STORE";
#[cfg(feature = "sqlite")]
const CHILD_URL: &str = "TOKENVAULT_YUP_CHILD_URL";

/// A child of `four_processes_refresh_once` (does nothing unless started by it): four
/// concurrent `token()` calls through its own handle on the store.
#[cfg(feature = "sqlite")]
#[test]
#[ignore = "run by four_processes_refresh_once as a child process"]
fn child_entry() {
    use tokenvault::backend::SqliteBackend;

    let (Ok(path), Ok(url)) = (std::env::var(CHILD_STORE), std::env::var(CHILD_URL)) else {
        return;
    };
    println!();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = AsyncStore::open(SqliteBackend::open(&path).unwrap(), key())
            .await
            .unwrap();
        let storage = TokenvaultStorage::new(store, KEY, &app_secret(&url)).unwrap();
        let auth = authenticator(&url, Storage::Tokenvault(Box::new(storage))).await;
        for result in concurrent_tokens(&[auth], 4).await {
            match result {
                Ok(token) => println!("CHILD TOKEN {token}"),
                Err(e) => println!("CHILD ERR {e}"),
            }
        }
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// yup-oauth2's `force_refreshed_token` refreshes by itself (the stored token is valid, so
/// `get` did not); `set` keeps its result, rotated refresh token included, for every other
/// user of the store.
#[tokio::test(flavor = "current_thread")]
async fn set_keeps_what_yup_oauth2_refreshed_itself() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let store = AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap();
    seed_expiring(&store, &server, now_ms() + 3_600_000).await;
    let auth = authenticator(
        &server.url,
        Storage::Tokenvault(Box::new(storage(&store, &server))),
    )
    .await;
    let forced = auth.force_refreshed_token(&SCOPES).await.unwrap();
    assert_eq!(forced.token(), Some("a-1"));
    assert_eq!(server.calls(), 1);
    assert_eq!(
        stored(&store, TokenField::AccessToken).await.as_deref(),
        Some("a-1")
    );
    assert_eq!(
        stored(&store, TokenField::RefreshToken).await.as_deref(),
        Some("r-1")
    );
    assert_eq!(
        stored(&store, TokenField::ClientSecret).await.as_deref(),
        Some(CLIENT_SECRET)
    );
    let expiry: u64 = stored(&store, TokenField::ExpiryTime)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let in_an_hour = now_ms() + 3_600_000;
    assert!(
        expiry.abs_diff(in_an_hour) < 60_000,
        "expires_at kept as epoch ms"
    );

    // Another authenticator on the same store: fresh, no request.
    let other = authenticator(
        &server.url,
        Storage::Tokenvault(Box::new(storage(&store, &server))),
    )
    .await;
    assert_eq!(other.token(&SCOPES).await.unwrap().token(), Some("a-1"));
    assert_eq!(server.calls(), 1);
}

/// A refused refresh makes `get` return nothing: yup-oauth2 goes to its flow and does not
/// send the refresh token a second time. The record is left as it was.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_refresh_is_not_retried_by_yup_oauth2() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    server.set_mode(Mode::InvalidGrant);
    let store = AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap();
    seed(&store, &server).await;
    let auth = authenticator(
        &server.url,
        Storage::Tokenvault(Box::new(storage(&store, &server))),
    )
    .await;
    let err = auth.token(&SCOPES).await.unwrap_err().to_string();
    assert!(err.contains("no browser"), "{err}");
    assert_eq!(
        server.calls(),
        1,
        "only the store's refresh reached the endpoint"
    );
    assert_eq!(
        stored(&store, TokenField::RefreshToken).await.as_deref(),
        Some("r-0")
    );
    assert_eq!(
        stored(&store, TokenField::AccessToken).await.as_deref(),
        Some("a-0")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn scopes_name_one_record_in_any_order() {
    let server = OAuthServer::start("r-0", CLIENT_ID, CLIENT_SECRET);
    let store = AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap();
    let storage = storage(&store, &server);
    let name = "ann@example.com https://www.googleapis.com/auth/drive openid";
    assert_eq!(storage.user_name_for(&SCOPES), name);
    assert_eq!(
        storage.user_name_for(&[SCOPES[1], SCOPES[0], SCOPES[1]]),
        name
    );
    assert_eq!(storage.user_name_for(&[]), KEY);

    seed(&store, &server).await;
    let auth = authenticator(&server.url, Storage::Tokenvault(Box::new(storage))).await;
    let reversed = [SCOPES[1], SCOPES[0]];
    assert_eq!(auth.token(&reversed).await.unwrap().token(), Some("a-1"));
    assert_eq!(auth.token(&SCOPES).await.unwrap().token(), Some("a-1"));
    assert_eq!(server.calls(), 1);
    let records = store.get_tokens().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].user_name(), Some(name));
}

#[tokio::test(flavor = "current_thread")]
async fn bad_configurations_are_refused() {
    let store = AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap();
    let ok = app_secret("https://oauth2.googleapis.com/token");
    for bad in ["", "ann smith", "ann\u{7}"] {
        assert!(
            matches!(
                TokenvaultStorage::new(store.clone(), bad, &ok),
                Err(ConfigError::Key(_))
            ),
            "{bad:?}"
        );
    }
    for url in [
        "http://oauth2.googleapis.com/token",
        "https://user:pw@example.com/token",
        "not a url",
    ] {
        assert!(matches!(
            TokenvaultStorage::new(store.clone(), KEY, &app_secret(url)),
            Err(ConfigError::TokenUrl(_))
        ));
    }
    let no_secret = ApplicationSecret {
        client_secret: String::new(),
        ..ok.clone()
    };
    assert!(matches!(
        TokenvaultStorage::new(store.clone(), KEY, &no_secret),
        Err(ConfigError::Incomplete("client_secret"))
    ));
    let storage = TokenvaultStorage::new(store, KEY, &ok).unwrap();
    assert!(matches!(
        storage.with_token_url("http://accounts.example.com/token"),
        Err(ConfigError::TokenUrl(_))
    ));
}
