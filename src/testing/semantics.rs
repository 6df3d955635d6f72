//! The Zoho store semantics (DESIGN.md §3), one case per rule.

use crate::backend::{Backend, LookupTags};
use crate::{Error, LookupField, OAuthToken, TokenField, TokenStore};

use super::{Make, Store, new_store, raw_key};

fn ann() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_client_id("1000.ANN")
        .with_client_secret("ann-secret")
        .with_refresh_token("r-ann")
        .with_access_token("a-ann")
        .with_grant_token("g-ann")
        .with_expiry_time(1_900_000_000_000)
        .with_redirect_url("https://example.com/cb")
        .with_api_domain("https://www.zohoapis.com")
}

fn bob() -> OAuthToken {
    OAuthToken::new()
        .with_user_name("bob@example.com")
        .with_client_id("1000.BOB")
        .with_client_secret("bob-secret")
        .with_refresh_token("r-bob")
        .with_access_token("a-bob")
        .with_grant_token("g-bob")
}

/// A store holding `tokens`, and their ids.
fn store_with(make: &Make, tokens: &[OAuthToken]) -> (Store, Vec<String>) {
    let store = new_store(make);
    let ids = tokens
        .iter()
        .map(|t| {
            let mut t = t.clone();
            store.save_token(&mut t).expect("save");
            t.id().expect("id set by save").to_owned()
        })
        .collect();
    (store, ids)
}

fn user_of(found: Option<OAuthToken>) -> Option<String> {
    found.and_then(|t| t.user_name().map(str::to_owned))
}

fn field(t: &OAuthToken, f: TokenField) -> Option<String> {
    t.expose_field(f).map(|v| v.to_string())
}

/// Conformance case: find by user name.
pub fn find_by_user_name(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    let q = OAuthToken::new().with_user_name("bob@example.com");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("bob@example.com")
    );
    let q = OAuthToken::new().with_user_name("BOB@example.com");
    assert!(
        store.find_token(&q).unwrap().is_none(),
        "user names compare exactly"
    );
}

/// Conformance case: user name takes precedence over tokens.
pub fn user_name_takes_precedence_over_tokens(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    // Bob's name with Ann's tokens: rule 1 decides, the tokens are not consulted.
    let q = OAuthToken::new()
        .with_user_name("bob@example.com")
        .with_access_token("a-ann");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("bob@example.com")
    );
    // An unknown name with Ann's access token: no fallback to rule 2.
    let q = OAuthToken::new()
        .with_user_name("cy@example.com")
        .with_access_token("a-ann");
    assert!(store.find_token(&q).unwrap().is_none());
}

/// Conformance case: find by access token without client credentials.
pub fn find_by_access_token_without_client_credentials(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    let q = OAuthToken::new().with_access_token("a-bob");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("bob@example.com")
    );
}

/// Conformance case: access token ignored with client id or secret.
pub fn access_token_ignored_with_client_id_or_secret(make: &Make) {
    let (store, _) = store_with(make, &[ann()]);
    let with_id = OAuthToken::new()
        .with_access_token("a-ann")
        .with_client_id("1000.ANN");
    assert!(store.find_token(&with_id).unwrap().is_none());
    let with_secret = OAuthToken::new()
        .with_access_token("a-ann")
        .with_client_secret("ann-secret");
    assert!(store.find_token(&with_secret).unwrap().is_none());
}

/// Conformance case: find by grant token with client credentials.
pub fn find_by_grant_token_with_client_credentials(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    // Grant token of Bob, refresh token of Ann: the grant token is tried first.
    let q = OAuthToken::new()
        .with_client_id("1000.X")
        .with_client_secret("x")
        .with_grant_token("g-bob")
        .with_refresh_token("r-ann");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("bob@example.com")
    );
}

/// Conformance case: refresh token when no grant token matches.
pub fn refresh_token_when_no_grant_token_matches(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    let creds = OAuthToken::new()
        .with_client_id("1000.X")
        .with_client_secret("x");
    let q = creds.clone().with_refresh_token("r-ann");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("ann@example.com")
    );
    // A grant token no record has: the SDKs' check_condition falls back to the refresh token.
    let q = creds
        .with_grant_token("g-unknown")
        .with_refresh_token("r-bob");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("bob@example.com")
    );
}

/// Conformance case: grant and refresh need both client id and secret.
pub fn grant_and_refresh_need_both_client_id_and_secret(make: &Make) {
    let (store, _) = store_with(make, &[ann()]);
    for q in [
        OAuthToken::new().with_refresh_token("r-ann"),
        OAuthToken::new()
            .with_refresh_token("r-ann")
            .with_client_id("1000.ANN"),
        OAuthToken::new()
            .with_grant_token("g-ann")
            .with_client_secret("ann-secret"),
    ] {
        assert!(store.find_token(&q).unwrap().is_none(), "{q:?}");
    }
}

/// Conformance case: find merges stored fields into query.
pub fn find_merges_stored_fields_into_query(make: &Make) {
    let (store, ids) = store_with(make, &[ann()]);
    let q = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_access_token("a-query")
        .with_api_domain("https://query.example");
    let found = store.find_token(&q).unwrap().unwrap();
    // Fields the query has are kept…
    assert_eq!(
        field(&found, TokenField::AccessToken).as_deref(),
        Some("a-query")
    );
    assert_eq!(found.api_domain(), Some("https://query.example"));
    // …the ones it lacks come from storage, id included.
    assert_eq!(found.id(), Some(ids[0].as_str()));
    assert_eq!(
        field(&found, TokenField::RefreshToken).as_deref(),
        Some("r-ann")
    );
    assert_eq!(
        field(&found, TokenField::ClientSecret).as_deref(),
        Some("ann-secret")
    );
    assert_eq!(found.expiry_time(), Some(1_900_000_000_000));
}

/// Conformance case: find without match returns none.
pub fn find_without_match_returns_none(make: &Make) {
    let (store, _) = store_with(make, &[ann()]);
    let q = OAuthToken::new().with_user_name("nobody@example.com");
    assert!(store.find_token(&q).unwrap().is_none());
    assert!(
        store
            .find_token(&OAuthToken::new().with_access_token("a-nope"))
            .unwrap()
            .is_none()
    );
}

/// Conformance case: empty query matches nothing.
pub fn empty_query_matches_nothing(make: &Make) {
    let (store, _) = store_with(make, &[ann()]);
    assert!(store.find_token(&OAuthToken::new()).unwrap().is_none());
    // An empty user name is an absent one, so rule 2 applies.
    let q = OAuthToken::new()
        .with_user_name("")
        .with_access_token("a-ann");
    assert_eq!(
        user_of(store.find_token(&q).unwrap()).as_deref(),
        Some("ann@example.com")
    );
}

/// Conformance case: save inserts with new unique id.
pub fn save_inserts_with_new_unique_id(make: &Make) {
    let store = new_store(make);
    let mut ids = std::collections::HashSet::new();
    for i in 0..50 {
        let mut t = OAuthToken::new()
            .with_user_name(format!("u{i}"))
            .with_refresh_token(format!("r{i}"));
        assert_eq!(t.id(), None);
        store.save_token(&mut t).unwrap();
        assert!(ids.insert(t.id().unwrap().to_owned()), "id reused");
    }
    assert_eq!(store.get_tokens().unwrap().len(), 50);
}

/// Conformance case: save by id updates that record.
pub fn save_by_id_updates_that_record(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    // The id decides even though the user name is Ann's? No: the id names Bob's record, and
    // the new user name must not collide with Ann's, so rename Bob.
    let mut t = OAuthToken::new()
        .with_id(&ids[1])
        .with_user_name("robert@example.com")
        .with_access_token("a-new");
    store.save_token(&mut t).unwrap();
    let bob = store.find_token_by_id(&ids[1]).unwrap().unwrap();
    assert_eq!(bob.user_name(), Some("robert@example.com"));
    assert_eq!(
        field(&bob, TokenField::AccessToken).as_deref(),
        Some("a-new")
    );
    assert_eq!(
        field(&bob, TokenField::RefreshToken).as_deref(),
        Some("r-bob")
    );
    assert_eq!(store.get_tokens().unwrap().len(), 2);
    let ann = store.find_token_by_id(&ids[0]).unwrap().unwrap();
    assert_eq!(
        field(&ann, TokenField::AccessToken).as_deref(),
        Some("a-ann"),
        "Ann untouched"
    );
}

/// Conformance case: save with unknown id inserts under that id.
pub fn save_with_unknown_id_inserts_under_that_id(make: &Make) {
    let store = new_store(make);
    let mut t = OAuthToken::new()
        .with_id("zoho-17")
        .with_refresh_token("r17");
    store.save_token(&mut t).unwrap();
    assert_eq!(t.id(), Some("zoho-17"));
    let stored = store.find_token_by_id("zoho-17").unwrap().unwrap();
    assert_eq!(
        field(&stored, TokenField::RefreshToken).as_deref(),
        Some("r17")
    );
}

/// Conformance case: save by matching rules updates without duplicate.
pub fn save_by_matching_rules_updates_without_duplicate(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    let updates = [
        OAuthToken::new()
            .with_user_name("ann@example.com")
            .with_access_token("a-ann-2"),
        OAuthToken::new()
            .with_access_token("a-ann-2")
            .with_expiry_time(1),
        OAuthToken::new()
            .with_client_id("1000.ANN")
            .with_client_secret("ann-secret")
            .with_refresh_token("r-ann")
            .with_api_domain("https://www.zohoapis.eu"),
    ];
    for mut update in updates {
        store.save_token(&mut update).unwrap();
        assert_eq!(update.id(), Some(ids[0].as_str()), "matched Ann's record");
        assert_eq!(store.get_tokens().unwrap().len(), 2, "no duplicate");
    }
    let ann = store.find_token_by_id(&ids[0]).unwrap().unwrap();
    assert_eq!(
        field(&ann, TokenField::AccessToken).as_deref(),
        Some("a-ann-2")
    );
    assert_eq!(ann.expiry_time(), Some(1));
    assert_eq!(ann.api_domain(), Some("https://www.zohoapis.eu"));
}

/// Conformance case: save merges missing fields from stored.
pub fn save_merges_missing_fields_from_stored(make: &Make) {
    let (store, ids) = store_with(make, &[ann()]);
    let mut update = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_access_token("a-2");
    store.save_token(&mut update).unwrap();
    let stored = store.find_token_by_id(&ids[0]).unwrap().unwrap();
    let mut expected = ann().with_access_token("a-2").with_id(&ids[0]);
    expected.fill_missing_from(&stored);
    for f in TokenField::ALL {
        assert_eq!(field(&stored, f), field(&expected, f), "{f:?}");
    }
}

/// Conformance case: save refuses id or user without any token.
pub fn save_refuses_id_or_user_without_any_token(make: &Make) {
    let store = new_store(make);
    let refused = [
        OAuthToken::new()
            .with_user_name("u")
            .with_client_id("c")
            .with_client_secret("s"),
        OAuthToken::new().with_id("7").with_expiry_time(5),
        OAuthToken::new().with_client_id("c"),
    ];
    for mut t in refused {
        assert!(
            matches!(store.save_token(&mut t), Err(Error::InvalidToken { .. })),
            "{t:?}"
        );
    }
    assert!(store.get_tokens().unwrap().is_empty(), "nothing written");
    // Updating an existing record needs no token: the stored ones are kept.
    let (store, ids) = store_with(make, &[ann()]);
    let mut t = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_api_domain("https://x");
    store.save_token(&mut t).unwrap();
    assert_eq!(t.id(), Some(ids[0].as_str()));
}

/// Conformance case: save refuses conflicting lookup values.
pub fn save_refuses_conflicting_lookup_values(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    let before = store.get_tokens().unwrap();
    // Bob's record (by id) taking Ann's refresh token.
    let mut t = OAuthToken::new()
        .with_id(&ids[1])
        .with_refresh_token("r-ann");
    match store.save_token(&mut t) {
        Err(Error::Conflict { field, existing_id }) => {
            assert_eq!(field, LookupField::RefreshToken);
            assert_eq!(existing_id, ids[0]);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A new user with Bob's access token.
    let mut t = OAuthToken::new()
        .with_user_name("cy")
        .with_access_token("a-bob");
    assert!(matches!(
        store.save_token(&mut t),
        Err(Error::Conflict {
            field: LookupField::AccessToken,
            ..
        })
    ));
    assert_eq!(store.get_tokens().unwrap(), before, "nothing changed");
}

/// Conformance case: save token fills caller token.
pub fn save_token_fills_caller_token(make: &Make) {
    let (store, ids) = store_with(make, &[ann()]);
    let mut t = OAuthToken::new()
        .with_user_name("ann@example.com")
        .with_access_token("a-3");
    store.save_token(&mut t).unwrap();
    assert_eq!(t.id(), Some(ids[0].as_str()));
    assert_eq!(
        field(&t, TokenField::RefreshToken).as_deref(),
        Some("r-ann")
    );
    assert_eq!(field(&t, TokenField::AccessToken).as_deref(), Some("a-3"));
}

/// Conformance case: delete token removes only that record.
pub fn delete_token_removes_only_that_record(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    store.delete_token(&ids[0]).unwrap();
    assert!(store.find_token_by_id(&ids[0]).unwrap().is_none());
    assert!(
        store
            .find_token(&OAuthToken::new().with_user_name("ann@example.com"))
            .unwrap()
            .is_none()
    );
    assert!(store.find_token_by_id(&ids[1]).unwrap().is_some());
    // Its lookup values are free again.
    let (mut again, _) = (ann(), ());
    store.save_token(&mut again).unwrap();
    assert_ne!(again.id(), Some(ids[0].as_str()));
}

/// Conformance case: delete unknown id is not found.
pub fn delete_unknown_id_is_not_found(make: &Make) {
    let (store, _) = store_with(make, &[ann()]);
    match store.delete_token("no-such-id") {
        Err(Error::NotFound { id }) => assert_eq!(id, "no-such-id"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.get_tokens().unwrap().len(), 1);
}

/// Conformance case: delete tokens removes all.
pub fn delete_tokens_removes_all(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    store.delete_tokens().unwrap();
    assert!(store.get_tokens().unwrap().is_empty());
    assert!(
        store
            .find_token(&OAuthToken::new().with_access_token("a-ann"))
            .unwrap()
            .is_none()
    );
    // The store is still usable.
    store.save_token(&mut ann()).unwrap();
    assert_eq!(store.get_tokens().unwrap().len(), 1);
}

/// Conformance case: get tokens returns all records.
pub fn get_tokens_returns_all_records(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    let mut got: Vec<_> = store
        .get_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.id().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let all = store.get_tokens().unwrap();
    let ann_stored = all
        .iter()
        .find(|t| t.id() == Some(ids[0].as_str()))
        .unwrap();
    assert_eq!(*ann_stored, ann().with_id(&ids[0]));
}

/// Conformance case: `Backend::scan` hands over exactly the records `list` returns, each
/// once, with their tags only when asked for.
pub fn scan_hands_over_every_record_once(make: &Make) {
    let (store, _) = store_with(make, &[ann(), bob()]);
    let backend = store.backend();
    let mut listed: Vec<_> = backend
        .list()
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.tags, r.sealed))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    for with_tags in [true, false] {
        let mut scanned = Vec::new();
        backend
            .scan(with_tags, &mut |r| {
                scanned.push((r.id.to_owned(), r.tags, r.sealed.to_vec()));
                Ok(())
            })
            .unwrap();
        scanned.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<_> = listed
            .iter()
            .map(|(id, tags, sealed)| {
                let tags = if with_tags {
                    *tags
                } else {
                    LookupTags::default()
                };
                (id.clone(), tags, sealed.clone())
            })
            .collect();
        assert_eq!(
            scanned, expected,
            "scan (with tags: {with_tags}) and list differ"
        );
    }
}

/// Conformance case: find token by id.
pub fn find_token_by_id(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    let bob_stored = store.find_token_by_id(&ids[1]).unwrap().unwrap();
    assert_eq!(bob_stored, bob().with_id(&ids[1]));
    assert!(store.find_token_by_id("missing").unwrap().is_none());
}

/// Conformance case: values are stored verbatim.
pub fn values_are_stored_verbatim(make: &Make) {
    let store = new_store(make);
    let long = "x".repeat(4096);
    let odd = [
        "o'neil\"; DROP TABLE oauthtoken; --",
        "100% _match_ \\ \0 nul",
        "line\nbreak\r\ttab",
        "ünïcødé ✓ 日本語 🦀",
        long.as_str(),
    ];
    let mut ids = Vec::new();
    for (i, value) in odd.iter().enumerate() {
        let mut t = OAuthToken::new()
            .with_user_name(*value)
            .with_refresh_token(format!("{value}-r"))
            .with_client_secret(*value)
            .with_redirect_url(format!("{value}{i}"));
        store.save_token(&mut t).unwrap();
        ids.push(t.id().unwrap().to_owned());
    }
    for (i, value) in odd.iter().enumerate() {
        let found = store
            .find_token(&OAuthToken::new().with_user_name(*value))
            .unwrap()
            .unwrap();
        assert_eq!(found.id(), Some(ids[i].as_str()));
        assert_eq!(
            field(&found, TokenField::ClientSecret).as_deref(),
            Some(*value)
        );
        assert_eq!(found.redirect_url(), Some(format!("{value}{i}").as_str()));
        let by_refresh = OAuthToken::new()
            .with_client_id("c")
            .with_client_secret("s")
            .with_refresh_token(format!("{value}-r"));
        assert_eq!(
            store.find_token(&by_refresh).unwrap().unwrap().id(),
            Some(ids[i].as_str())
        );
    }
    // A prefix or a LIKE pattern finds nothing.
    assert!(
        store
            .find_token(&OAuthToken::new().with_user_name("o'neil"))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_token(&OAuthToken::new().with_user_name("%"))
            .unwrap()
            .is_none()
    );
}

/// Conformance case: reopen sees saved records.
pub fn reopen_sees_saved_records(make: &Make) {
    let (store, ids) = store_with(make, &[ann(), bob()]);
    let backend = store.into_backend();
    let reopened = crate::EncryptedStore::open(backend, &raw_key()).unwrap();
    assert_eq!(
        reopened.find_token_by_id(&ids[0]).unwrap().unwrap(),
        ann().with_id(&ids[0])
    );
    let mut t = OAuthToken::new()
        .with_user_name("bob@example.com")
        .with_access_token("a-bob-2");
    reopened.save_token(&mut t).unwrap();
    assert_eq!(t.id(), Some(ids[1].as_str()));
}
