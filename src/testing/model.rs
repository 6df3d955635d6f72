//! Model-based test: random sequences of the six `TokenStore` operations on an
//! [`EncryptedStore`](tokenvault::EncryptedStore) must behave exactly like a small plaintext
//! reference model of the Zoho rules (DESIGN.md §3, `store.rs`).
//!
//! The model is a `BTreeMap` from record id to a plain record ([`Rec`]: ten `Option` fields, no
//! secrecy wrappers, empty string = absent), and each operation is a direct transcription of
//! the rules:
//!
//! * matching (`find_token`, and `save_token` without id): (1) a user name picks the record with
//!   that user name; (2) else an access token without client id and without client secret picks
//!   the record with that access token; (3) else, with both client id and client secret, the
//!   record with the query's grant token if one has it, otherwise the record with its refresh
//!   token; otherwise nothing;
//! * `find_token`: the match with the query's fields winning (fields it lacks, the id included,
//!   come from the record);
//! * `save_token`: the target is the record with the token's id if it has one (no rule
//!   matching), else the match; the saved record is the token with missing fields filled from
//!   the target and the target's id. Without a target, a token with none of access, refresh or
//!   grant token is `InvalidToken`; otherwise it is inserted under its own id or a fresh one
//!   that the store picks (the model checks that it is new and adopts it). Then, if another
//!   record holds one of the result's user name / access / refresh / grant token, the save is
//!   `Conflict` naming the first such field in [`LookupField::ALL`] order and that record. On
//!   success the caller's token becomes the saved record; on error nothing changes, the
//!   caller's token included;
//! * `delete_token` of an absent id is `NotFound`; `delete_tokens` empties the map;
//!   `get_tokens` is every record (compared sorted by id); `find_token_by_id` is a map lookup.
//!
//! Values come from tiny domains (three user names, two or three values per token, two client
//! ids and secrets, a few literal ids plus every id the store handed out, deleted ones
//! included) so that matches, updates and conflicts are frequent; some carry SQL
//! metacharacters, non-ASCII text, empty strings and `u64::MAX`. Every result is compared (values field by field, errors by kind and
//! their `field`/`existing_id`/`id`), and after every step `get_tokens()` must equal the model.
//!
//! `TOKENVAULT_MODEL_CASES` sets the number of cases (default 256). A failure is shrunk and
//! reported as the minimal sequence of operations, with plaintext values.

use std::collections::BTreeMap;

use crate::{Error, LookupField, OAuthToken, TokenField, TokenStore};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};

use super::{Make, Store, new_store};

// ---------------------------------------------------------------------------------------------
// The reference model.

/// A plaintext token record. `None` is an absent value; the model never holds `Some("")`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rec {
    id: Option<String>,
    user_name: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    access_token: Option<String>,
    grant_token: Option<String>,
    expiry_time: Option<u64>,
    redirect_url: Option<String>,
    api_domain: Option<String>,
}

impl Rec {
    /// The value of one of the four lookup fields.
    fn lookup(&self, field: LookupField) -> Option<&str> {
        match field {
            LookupField::UserName => self.user_name.as_deref(),
            LookupField::AccessToken => self.access_token.as_deref(),
            LookupField::RefreshToken => self.refresh_token.as_deref(),
            LookupField::GrantToken => self.grant_token.as_deref(),
        }
    }

    fn has_any_token(&self) -> bool {
        self.access_token.is_some() || self.refresh_token.is_some() || self.grant_token.is_some()
    }

    /// The Zoho merge: every field `self` lacks is taken from `stored`.
    fn fill_missing_from(&mut self, stored: &Rec) {
        fn fill<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        fill(&mut self.id, &stored.id);
        fill(&mut self.user_name, &stored.user_name);
        fill(&mut self.client_id, &stored.client_id);
        fill(&mut self.client_secret, &stored.client_secret);
        fill(&mut self.refresh_token, &stored.refresh_token);
        fill(&mut self.access_token, &stored.access_token);
        fill(&mut self.grant_token, &stored.grant_token);
        fill(&mut self.expiry_time, &stored.expiry_time);
        fill(&mut self.redirect_url, &stored.redirect_url);
        fill(&mut self.api_domain, &stored.api_domain);
    }

    /// The token the store is given, built with the public builders.
    fn to_token(&self) -> OAuthToken {
        let mut t = OAuthToken::new();
        t.set_id(self.id.clone());
        t.set_user_name(self.user_name.clone());
        t.set_client_id(self.client_id.clone());
        t.set_client_secret(self.client_secret.clone());
        t.set_refresh_token(self.refresh_token.clone());
        t.set_access_token(self.access_token.clone());
        t.set_grant_token(self.grant_token.clone());
        t.set_expiry_time(self.expiry_time);
        t.set_redirect_url(self.redirect_url.clone());
        t.set_api_domain(self.api_domain.clone());
        t
    }

    /// Reads a token the store returned, field by field through `expose_field`.
    fn from_token(token: &OAuthToken) -> Rec {
        let text = |f: TokenField| token.expose_field(f).map(|v| v.to_string());
        Rec {
            id: text(TokenField::Id),
            user_name: text(TokenField::UserName),
            client_id: text(TokenField::ClientId),
            client_secret: text(TokenField::ClientSecret),
            refresh_token: text(TokenField::RefreshToken),
            access_token: text(TokenField::AccessToken),
            grant_token: text(TokenField::GrantToken),
            expiry_time: text(TokenField::ExpiryTime)
                .map(|t| t.parse().expect("expiry_time is exposed as a decimal u64")),
            redirect_url: text(TokenField::RedirectUrl),
            api_domain: text(TokenField::ApiDomain),
        }
    }
}

/// An error, by kind and the details the model can predict.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrKind {
    InvalidToken,
    Conflict {
        field: LookupField,
        existing_id: String,
    },
    NotFound {
        id: String,
    },
    /// Any other error: never expected.
    Other(String),
}

impl From<Error> for ErrKind {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidToken { .. } => ErrKind::InvalidToken,
            Error::Conflict { field, existing_id } => ErrKind::Conflict { field, existing_id },
            Error::NotFound { id } => ErrKind::NotFound { id },
            other => ErrKind::Other(other.to_string()),
        }
    }
}

/// What a save should do: write `merged` under `id` (`None`: a fresh id the store picks).
#[derive(Debug)]
struct PlannedSave {
    merged: Rec,
    id: Option<String>,
}

#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<String, Rec>,
    /// Every id ever stored, in order, deleted ones included: the pool `IdRef::Known` picks from.
    known_ids: Vec<String>,
}

impl Model {
    fn find_by(&self, field: LookupField, value: &str) -> Option<&Rec> {
        self.records
            .values()
            .find(|r| r.lookup(field) == Some(value))
    }

    /// The Zoho matching rules.
    fn matching(&self, q: &Rec) -> Option<&Rec> {
        // 1. user name
        if let Some(name) = &q.user_name {
            return self.find_by(LookupField::UserName, name);
        }
        // 2. access token, without client id and without client secret
        if let Some(access) = &q.access_token
            && q.client_id.is_none()
            && q.client_secret.is_none()
        {
            return self.find_by(LookupField::AccessToken, access);
        }
        // 3. both client id and client secret: grant token if a record has it, else refresh token
        if q.client_id.is_some() && q.client_secret.is_some() {
            if let Some(grant) = &q.grant_token
                && let Some(found) = self.find_by(LookupField::GrantToken, grant)
            {
                return Some(found);
            }
            if let Some(refresh) = &q.refresh_token {
                return self.find_by(LookupField::RefreshToken, refresh);
            }
        }
        None
    }

    fn find_token(&self, q: &Rec) -> Option<Rec> {
        self.matching(q).map(|stored| {
            let mut merged = q.clone();
            merged.fill_missing_from(stored);
            merged
        })
    }

    /// The outcome `save_token(t)` must have; changes nothing.
    fn plan_save(&self, t: &Rec) -> Result<PlannedSave, ErrKind> {
        let target = match &t.id {
            Some(id) => self.records.get(id),
            None => self.matching(t),
        };
        let mut merged = t.clone();
        let id = match target {
            Some(stored) => {
                merged.fill_missing_from(stored);
                stored.id.clone()
            }
            None if !t.has_any_token() => return Err(ErrKind::InvalidToken),
            None => t.id.clone(),
        };
        for field in LookupField::ALL {
            if let Some(value) = merged.lookup(field)
                && let Some(other) = self.find_by(field, value)
                && other.id != id
            {
                return Err(ErrKind::Conflict {
                    field,
                    existing_id: other.id.clone().expect("model records have ids"),
                });
            }
        }
        Ok(PlannedSave { merged, id })
    }

    fn insert(&mut self, rec: Rec) {
        let id = rec.id.clone().expect("saved records have ids");
        if !self.known_ids.contains(&id) {
            self.known_ids.push(id.clone());
        }
        self.records.insert(id, rec);
    }

    fn delete_token(&mut self, id: &str) -> Result<(), ErrKind> {
        match self.records.remove(id) {
            Some(_) => Ok(()),
            None => Err(ErrKind::NotFound { id: id.to_owned() }),
        }
    }

    fn sorted(&self) -> Vec<Rec> {
        self.records.values().cloned().collect()
    }

    fn resolve(&self, id: &IdRef) -> String {
        match id {
            IdRef::Known(i) if !self.known_ids.is_empty() => {
                self.known_ids[i % self.known_ids.len()].clone()
            }
            IdRef::Known(_) => "x".to_owned(),
            IdRef::Literal(s) => (*s).to_owned(),
        }
    }

    /// The record a spec describes, ids resolved and empty strings made absent.
    fn rec_of(&self, spec: &TokenSpec) -> Rec {
        fn text(v: Option<&str>) -> Option<String> {
            v.filter(|s| !s.is_empty()).map(str::to_owned)
        }
        Rec {
            id: text(spec.id.as_ref().map(|i| self.resolve(i)).as_deref()),
            user_name: text(spec.user_name),
            client_id: text(spec.client_id),
            client_secret: text(spec.client_secret),
            refresh_token: text(spec.refresh_token),
            access_token: text(spec.access_token),
            grant_token: text(spec.grant_token),
            expiry_time: spec.expiry_time,
            redirect_url: text(spec.redirect_url),
            api_domain: text(spec.api_domain),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and their generators.

/// A record id: one the store has used (by index into the model's pool) or a literal.
#[derive(Clone, Debug)]
enum IdRef {
    Known(usize),
    Literal(&'static str),
}

/// A token or query, in plaintext so that a counterexample prints readably.
#[derive(Clone, Debug)]
struct TokenSpec {
    id: Option<IdRef>,
    user_name: Option<&'static str>,
    client_id: Option<&'static str>,
    client_secret: Option<&'static str>,
    refresh_token: Option<&'static str>,
    access_token: Option<&'static str>,
    grant_token: Option<&'static str>,
    expiry_time: Option<u64>,
    redirect_url: Option<&'static str>,
    api_domain: Option<&'static str>,
}

#[derive(Clone, Debug)]
enum Op {
    Save(TokenSpec),
    Find(TokenSpec),
    FindById(IdRef),
    Delete(IdRef),
    GetTokens,
    DeleteTokens,
}

fn one_of(
    probability: f64,
    values: &'static [&'static str],
) -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(probability, prop::sample::select(values))
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![
        3 => any::<usize>().prop_map(IdRef::Known),
        1 => prop::sample::select(&["x", "y", "id'; DROP TABLE tokens; --", "ü-id", ""][..])
            .prop_map(IdRef::Literal),
    ]
}

fn token_spec() -> impl Strategy<Value = TokenSpec> {
    (
        prop::option::weighted(0.2, id_ref()),
        one_of(0.5, &["ann", "o'neil", "ü", ""]),
        one_of(0.6, &["c", "c2", ""]),
        one_of(0.6, &["s", "s\"2"]),
        one_of(0.5, &["r1", "r2", "r'; DROP TABLE tokens; --"]),
        one_of(0.5, &["a1", "a2", "a3", ""]),
        one_of(0.4, &["g1", "g2"]),
        prop::option::of(prop::sample::select(
            &[0, 1, 1_700_000_000_000, u64::MAX][..],
        )),
        one_of(
            0.4,
            &["https://example.com/cb", "https://ü.example/?q='x'%00"],
        ),
        one_of(
            0.4,
            &["https://www.zohoapis.com", "https://www.zohoapis.eu"],
        ),
    )
        .prop_map(
            |(
                id,
                user_name,
                client_id,
                client_secret,
                refresh_token,
                access_token,
                grant_token,
                expiry_time,
                redirect_url,
                api_domain,
            )| TokenSpec {
                id,
                user_name,
                client_id,
                client_secret,
                refresh_token,
                access_token,
                grant_token,
                expiry_time,
                redirect_url,
                api_domain,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => token_spec().prop_map(Op::Save),
        6 => token_spec().prop_map(Op::Find),
        2 => id_ref().prop_map(Op::FindById),
        2 => id_ref().prop_map(Op::Delete),
        1 => Just(Op::GetTokens),
        1 => Just(Op::DeleteTokens),
    ]
}

// ---------------------------------------------------------------------------------------------
// The property.

/// Runs random operation sequences against a fresh store and the model, comparing every result.
pub fn matches_reference_model(make: &Make) {
    let cases = std::env::var("TOKENVAULT_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let config = ProptestConfig {
        cases,
        // The counterexample is printed below; no regression file in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = prop::collection::vec(op(), 1..=40);
    match runner.run(&strategy, |ops| run_case(make, &ops)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            let ops: Vec<String> = ops.iter().map(|op| format!("    {op:?}")).collect();
            panic!(
                "store differs from the reference model (left = store, right = model): \
                 {reason}\nminimal sequence of operations:\n{}",
                ops.join("\n")
            )
        }
        Err(TestError::Abort(reason)) => panic!("model test aborted: {reason}"),
    }
}

fn store_records(store: &Store) -> Result<Vec<Rec>, TestCaseError> {
    let tokens = store
        .get_tokens()
        .map_err(|e| TestCaseError::fail(format!("get_tokens failed: {e}")))?;
    let mut recs: Vec<Rec> = tokens.iter().map(Rec::from_token).collect();
    recs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(recs)
}

fn run_case(make: &Make, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = new_store(make);
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Save(spec) => {
                let input = model.rec_of(spec);
                let mut token = input.to_token();
                prop_assert_eq!(&Rec::from_token(&token), &input, "step {}: builders", step);
                let expected = model.plan_save(&input);
                let actual = store.save_token(&mut token).map_err(ErrKind::from);
                let after = Rec::from_token(&token);
                match (expected, actual) {
                    (Ok(plan), Ok(())) => {
                        let id = match plan.id {
                            Some(id) => id,
                            None => {
                                let fresh = after.id.clone();
                                prop_assert!(
                                    fresh.as_ref().is_some_and(
                                        |id| !id.is_empty() && !model.records.contains_key(id)
                                    ),
                                    "step {}: {:?}: fresh id {:?} is not new",
                                    step,
                                    input,
                                    fresh
                                );
                                fresh.expect("checked")
                            }
                        };
                        let mut merged = plan.merged;
                        merged.id = Some(id);
                        prop_assert_eq!(&after, &merged, "step {}: save {:?}", step, input);
                        prop_assert!(
                            token == merged.to_token(),
                            "step {}: OAuthToken equality",
                            step
                        );
                        model.insert(merged);
                    }
                    (Err(want), Err(got)) => {
                        prop_assert_eq!(got, want, "step {}: save {:?}", step, input);
                        prop_assert_eq!(
                            &after,
                            &input,
                            "step {}: failed save changed the token",
                            step
                        );
                    }
                    (want, got) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: save {input:?}: model says {want:?}, store says \
                             {got:?} (token now {after:?})"
                        )));
                    }
                }
            }
            Op::Find(spec) => {
                let query = model.rec_of(spec);
                let expected = model.find_token(&query);
                let actual = store
                    .find_token(&query.to_token())
                    .map_err(ErrKind::from)
                    .map(|found| found.as_ref().map(Rec::from_token));
                prop_assert_eq!(actual, Ok(expected), "step {}: find {:?}", step, query);
            }
            Op::FindById(id) => {
                let id = model.resolve(id);
                let expected = model.records.get(&id).cloned();
                let actual = store
                    .find_token_by_id(&id)
                    .map_err(ErrKind::from)
                    .map(|found| found.as_ref().map(Rec::from_token));
                prop_assert_eq!(actual, Ok(expected), "step {}: find_by_id {:?}", step, id);
            }
            Op::Delete(id) => {
                let id = model.resolve(id);
                let expected = model.delete_token(&id);
                let actual = store.delete_token(&id).map_err(ErrKind::from);
                prop_assert_eq!(actual, expected, "step {}: delete {:?}", step, id);
            }
            Op::GetTokens => {
                let actual = store_records(&store)?;
                prop_assert_eq!(actual, model.sorted(), "step {}: get_tokens", step);
            }
            Op::DeleteTokens => {
                let actual = store.delete_tokens().map_err(ErrKind::from);
                model.records.clear();
                prop_assert_eq!(actual, Ok(()), "step {}: delete_tokens", step);
            }
        }
        let actual = store_records(&store)?;
        prop_assert_eq!(
            actual,
            model.sorted(),
            "step {}: stored records after {:?}",
            step,
            op
        );
    }
    Ok(())
}
