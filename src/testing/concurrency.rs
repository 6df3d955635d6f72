//! Concurrency inside one process: many threads saving through one store handle.

use std::collections::{BTreeMap, HashSet};

use crate::{OAuthToken, TokenField, TokenStore};

use super::{Make, new_store};

const THREADS: usize = 8;
const SAVES_PER_THREAD: usize = 1000;
const USERS: usize = 100;

/// 8 threads × 1000 `save_token` over 100 users → exactly 100 records, no duplicate, each
/// holding the last value some thread wrote for it, and no field lost by a merge.
pub fn eight_threads_thousand_saves(make: &Make) {
    let store = new_store(make);
    // Every thread's last write per user: the committed last write must be one of them.
    let last_writes: Vec<BTreeMap<usize, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    let mut last = BTreeMap::new();
                    for i in 0..SAVES_PER_THREAD {
                        let user = (i * 7 + t * 13) % USERS;
                        let access = format!("a-{t}-{i}");
                        // The first save of a user carries a refresh token and client id;
                        // later ones only an access token, so a lost merge would drop them.
                        let mut token = OAuthToken::new()
                            .with_user_name(format!("user{user}"))
                            .with_access_token(&access);
                        if i < USERS {
                            token = token
                                .with_refresh_token(format!("r-{user}"))
                                .with_client_id("1000.C");
                        }
                        store
                            .save_token(&mut token)
                            .unwrap_or_else(|e| panic!("thread {t} save {i}: {e}"));
                        last.insert(user, access);
                    }
                    last
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect()
    });

    let tokens = store.get_tokens().unwrap();
    assert_eq!(tokens.len(), USERS, "one record per user");
    let names: HashSet<_> = tokens
        .iter()
        .map(|t| t.user_name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), USERS, "no duplicate user");
    for token in &tokens {
        let user: usize = token.user_name().unwrap()["user".len()..].parse().unwrap();
        let access = token
            .expose_field(TokenField::AccessToken)
            .unwrap()
            .to_string();
        let candidates: Vec<&String> = last_writes.iter().filter_map(|l| l.get(&user)).collect();
        assert!(
            candidates.contains(&&access),
            "user{user} holds {access}, not a last write of any thread"
        );
        assert_eq!(
            token.client_id(),
            Some("1000.C"),
            "user{user} lost its client id"
        );
        let refresh = token
            .expose_field(TokenField::RefreshToken)
            .map(|r| r.to_string());
        assert!(
            refresh.is_some_and(|r| r.starts_with("r-")),
            "user{user} lost its refresh token"
        );
    }
}
