//! The async façade (`integrations::tokio::AsyncStore`, feature `async`): the six operations,
//! `save` and `refresh_with` on the memory and SQLite backends, concurrent saves from many
//! tasks, and an executor that keeps running while the blocking work waits.

#![cfg(feature = "async")]

#[cfg(feature = "oauth")]
#[path = "refresh/oauth_server.rs"]
#[allow(dead_code)]
mod oauth_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokenvault::backend::{Backend, MemoryBackend};
use tokenvault::integrations::tokio::AsyncStore;
use tokenvault::{Credential, Error, OAuthToken, RawKey, RefreshError, Saved, TokenField};

fn key() -> Credential {
    Credential::raw_key(RawKey::from_bytes([7; 32]))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn field(token: &OAuthToken, field: TokenField) -> Option<String> {
    token.expose_field(field).map(|v| v.as_str().to_owned())
}

async fn memory_store() -> AsyncStore<MemoryBackend> {
    AsyncStore::create(MemoryBackend::new(), key())
        .await
        .unwrap()
}

/// The six `TokenStore` operations and `save`, through the façade.
async fn six_operations<B: Backend + 'static>(store: AsyncStore<B>) {
    let mut ann = OAuthToken::new()
        .with_user_name("ann")
        .with_client_id("1000.CLIENT")
        .with_refresh_token("r-ann")
        .with_access_token("a-ann")
        .with_expiry_time(now_ms() + 3_600_000);
    assert_eq!(store.save(&mut ann).await.unwrap(), Saved::Inserted);
    let ann_id = ann.id().expect("save sets the id").to_owned();

    // An update merges, and the caller's token is the stored record afterwards.
    let mut update = OAuthToken::new()
        .with_user_name("ann")
        .with_access_token("a-ann-2");
    store.save_token(&mut update).await.unwrap();
    assert_eq!(update.id(), Some(ann_id.as_str()));
    assert_eq!(
        field(&update, TokenField::RefreshToken).as_deref(),
        Some("r-ann")
    );
    let mut again = OAuthToken::new()
        .with_user_name("ann")
        .with_access_token("a-ann-3");
    assert_eq!(store.save(&mut again).await.unwrap(), Saved::Updated);

    let mut bob = OAuthToken::new()
        .with_user_name("bob")
        .with_refresh_token("r-bob");
    store.save_token(&mut bob).await.unwrap();
    let bob_id = bob.id().unwrap().to_owned();

    // A refused save leaves the caller's token as it was.
    let mut empty = OAuthToken::new().with_user_name("carol");
    let before = empty.clone();
    assert!(matches!(
        store.save_token(&mut empty).await,
        Err(Error::InvalidToken { .. })
    ));
    assert_eq!(empty, before);

    let found = store
        .find_token(&OAuthToken::new().with_user_name("ann"))
        .await
        .unwrap()
        .expect("ann is stored");
    assert_eq!(found.id(), Some(ann_id.as_str()));
    assert_eq!(
        field(&found, TokenField::AccessToken).as_deref(),
        Some("a-ann-3")
    );
    assert_eq!(found.client_id(), Some("1000.CLIENT"));
    assert!(
        store
            .find_token(&OAuthToken::new().with_user_name("nobody"))
            .await
            .unwrap()
            .is_none()
    );

    let by_id = store.find_token_by_id(&bob_id).await.unwrap().unwrap();
    assert_eq!(by_id.user_name(), Some("bob"));
    assert!(store.find_token_by_id("0000").await.unwrap().is_none());

    let mut names: Vec<_> = store
        .get_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.user_name().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ann", "bob"]);

    store.delete_token(&ann_id).await.unwrap();
    assert!(matches!(
        store.delete_token(&ann_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.find_token_by_id(&ann_id).await.unwrap().is_none());
    assert_eq!(store.get_tokens().await.unwrap().len(), 1);

    store.delete_tokens().await.unwrap();
    assert!(store.get_tokens().await.unwrap().is_empty());
}

#[tokio::test]
async fn six_operations_on_memory() {
    six_operations(memory_store().await).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn six_operations_on_sqlite() {
    use tokenvault::backend::SqliteBackend;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let backend = SqliteBackend::open(&path).unwrap();
    six_operations(AsyncStore::create(backend, key()).await.unwrap()).await;
    // The store is on disk: another handle opens it.
    let reopened = AsyncStore::open(SqliteBackend::open(&path).unwrap(), key())
        .await
        .unwrap();
    assert!(reopened.get_tokens().await.unwrap().is_empty());
}

/// 64 tasks save tokens of 8 users at once; every user ends up with exactly one record.
async fn concurrent_saves<B: Backend + 'static>(stores: &[AsyncStore<B>]) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                let mut token = OAuthToken::new()
                    .with_user_name(format!("user-{}", i % 8))
                    .with_access_token(format!("a-{i}"));
                store.save(&mut token).await.unwrap()
            })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap() == Saved::Inserted {
            inserted += 1;
        }
    }
    assert_eq!(
        inserted, 8,
        "one insert per user, every other save an update"
    );
    let mut names: Vec<_> = stores[0]
        .get_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.user_name().unwrap().to_owned())
        .collect();
    names.sort();
    let expected: Vec<_> = (0..8).map(|i| format!("user-{i}")).collect();
    assert_eq!(names, expected, "no duplicates, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_save_without_duplicates_on_memory() {
    concurrent_saves(&[memory_store().await]).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_save_without_duplicates_on_sqlite_through_two_handles() {
    use tokenvault::backend::SqliteBackend;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let first = AsyncStore::create(SqliteBackend::open(&path).unwrap(), key())
        .await
        .unwrap();
    // A second connection, as a second process would have.
    let second = AsyncStore::open(SqliteBackend::open(&path).unwrap(), key())
        .await
        .unwrap();
    concurrent_saves(&[first, second]).await;
}

/// An expired token for `ann` in a fresh memory store.
async fn store_with_expired_token() -> AsyncStore<MemoryBackend> {
    let store = memory_store().await;
    let mut token = OAuthToken::new()
        .with_user_name("ann")
        .with_refresh_token("r-0")
        .with_access_token("a-0")
        .with_expiry_time(1);
    store.save_token(&mut token).await.unwrap();
    store
}

fn ann() -> OAuthToken {
    OAuthToken::new().with_user_name("ann")
}

fn fresh(access: &str) -> OAuthToken {
    OAuthToken::new()
        .with_access_token(access)
        .with_expiry_time(now_ms() + 3_600_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_refresh_once() {
    let store = store_with_expired_token().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, calls) = (store.clone(), calls.clone());
            tokio::spawn(async move {
                store
                    .refresh_with(&ann(), Duration::from_secs(60), move |stored| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(
                            field(stored, TokenField::RefreshToken).as_deref(),
                            Some("r-0")
                        );
                        std::thread::sleep(Duration::from_millis(100));
                        Ok::<_, String>(fresh("a-1"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        let token = task.await.unwrap();
        assert_eq!(
            field(&token, TokenField::AccessToken).as_deref(),
            Some("a-1")
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Errors come back as the blocking method's.
    let stale = store
        .find_token(&ann())
        .await
        .unwrap()
        .unwrap()
        .with_expiry_time(1);
    store.save_token(&mut stale.clone()).await.unwrap();
    let refused = store
        .refresh_with(&ann(), Duration::ZERO, |_| {
            Err::<OAuthToken, _>("invalid_grant")
        })
        .await;
    assert!(matches!(
        refused,
        Err(RefreshError::Refresher("invalid_grant"))
    ));
    let none = store
        .refresh_with(
            &OAuthToken::new().with_user_name("nobody"),
            Duration::ZERO,
            |t| Ok::<_, String>(t.clone()),
        )
        .await;
    assert!(matches!(none, Err(RefreshError::Store(Error::NoMatch))));
}

/// On a current-thread runtime (one thread for every task), a slow refresher runs on the
/// blocking pool: a timer keeps ticking and another task's lookup completes meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_refresher_does_not_block_the_executor() {
    let store = store_with_expired_token().await;
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    let query = ann();
    let refresh = store.refresh_with(&query, Duration::from_secs(60), |_| {
        std::thread::sleep(Duration::from_millis(600));
        Ok::<_, String>(fresh("a-1"))
    });
    let lookup = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let token = store.find_token(&ann()).await.unwrap().unwrap();
        (started.elapsed(), token)
    };
    let (refreshed, (looked_up_after, seen)) = tokio::join!(refresh, lookup);
    let refreshed_after = started.elapsed();
    ticker.abort();

    assert_eq!(
        field(&refreshed.unwrap(), TokenField::AccessToken).as_deref(),
        Some("a-1")
    );
    assert!(refreshed_after >= Duration::from_millis(600));
    assert!(
        looked_up_after < Duration::from_millis(450),
        "the lookup finished while the refresher slept ({looked_up_after:?})"
    );
    assert_eq!(
        field(&seen, TokenField::AccessToken).as_deref(),
        Some("a-0"),
        "read before the refresh saved"
    );
    let ticked = ticks.load(Ordering::SeqCst);
    assert!(
        ticked >= 20,
        "a 10 ms timer ticked {ticked} times in {refreshed_after:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_in_the_blocking_task_is_resumed_in_the_caller() {
    let store = store_with_expired_token().await;
    let task = tokio::spawn(async move {
        store
            .refresh_with(
                &ann(),
                Duration::from_secs(60),
                |_| -> Result<OAuthToken, String> { panic!("refresher bug") },
            )
            .await
    });
    let err = task.await.expect_err("the awaiting task panicked");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"refresher bug"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_refresh_still_completes_and_saves() {
    let store = store_with_expired_token().await;
    let timed_out = tokio::time::timeout(
        Duration::from_millis(20),
        store.refresh_with(&ann(), Duration::from_secs(60), |_| {
            std::thread::sleep(Duration::from_millis(200));
            Ok::<_, String>(fresh("a-1"))
        }),
    )
    .await;
    assert!(timed_out.is_err(), "the caller stopped waiting");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = store.find_token(&ann()).await.unwrap().unwrap();
        if field(&stored, TokenField::AccessToken).as_deref() == Some("a-1") {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn run_blocking_reaches_the_blocking_store() {
    let store = store_with_expired_token().await;
    let report = store
        .run_blocking(|store| store.verify())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.ok, 1);
    assert!(report.failed.is_empty());
}

/// `access_token` (feature `oauth`): sixteen tasks, one expired token, one request at a real
/// token endpoint on 127.0.0.1 that makes refresh tokens single-use.
#[cfg(feature = "oauth")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_get_an_access_token_with_one_request() {
    use oauth_server::{Mode, OAuthServer};
    use tokenvault::vault::AccessOptions;

    let server = OAuthServer::start("r-0", "1000.CLIENT", "client-secret");
    server.set_mode(Mode::Slow(Duration::from_millis(200)));
    let store = memory_store().await;
    let mut token = OAuthToken::new()
        .with_user_name("ann")
        .with_client_id("1000.CLIENT")
        .with_client_secret("client-secret")
        .with_refresh_token("r-0")
        .with_access_token("a-0")
        .with_expiry_time(1);
    store.save_token(&mut token).await.unwrap();
    let options = AccessOptions::default().with_token_url(server.url.clone());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, options) = (store.clone(), options.clone());
            tokio::spawn(async move { store.access_token(&ann(), &options).await })
        })
        .collect();
    for task in tasks {
        let access = task.await.unwrap().unwrap();
        assert_eq!(access.expose_secret(), "a-1");
    }
    assert_eq!(server.calls(), 1);
    let stored = store.find_token(&ann()).await.unwrap().unwrap();
    assert_eq!(
        field(&stored, TokenField::RefreshToken).as_deref(),
        Some("r-1")
    );
}
