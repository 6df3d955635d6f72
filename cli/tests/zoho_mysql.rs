//! `tokenvault import --format zoho-mysql URI` against the real MariaDB server that
//! `.ci/services/mariadb.sh` starts: the CLI half of the library's
//! `zoho_dbstore_table_imports_byte_for_byte` (tests/mysql.rs), which checks every byte.
#![cfg(feature = "mysql")]

#[allow(dead_code)] // the server helpers the library tests share; this test uses a few
#[path = "../../tests/common/servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../../tests/common/skipped.rs"]
mod skipped;

use std::process::{Command, Output};

use mysql::prelude::Queryable;
use servers::{MYSQL_VAR, admin_conn, mysql_var, parse, with_database};

/// The Zoho SDK's DDL (`zohocrmsdk8-0` README), as in tests/mysql.rs.
const ZOHO_DDL: &str = "CREATE TABLE oauthtoken (
  id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255),
  client_secret varchar(255), refresh_token varchar(255), access_token varchar(255),
  grant_token varchar(255), expiry_time varchar(20), redirect_url varchar(255),
  api_domain varchar(255), primary key (id))";

#[test]
fn zoho_dbstore_table_imports_through_the_cli() {
    let Some(uri) = mysql_var(MYSQL_VAR, "cli::zoho_mysql", "test") else {
        return;
    };
    // `t_…`: a name the CI server lets the test user create (.ci/services/mariadb.sh).
    let database = format!("t_zohocli_{}", servers::random_hex());
    let mut admin = admin_conn(&uri);
    admin
        .query_drop(format!("CREATE DATABASE {database} CHARACTER SET utf8mb4"))
        .unwrap();
    struct Drop_(String, String);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            let _ = admin_conn(&self.0).query_drop(format!("DROP DATABASE IF EXISTS {}", self.1));
        }
    }
    let _cleanup = Drop_(uri.clone(), database.clone());
    let zoho_uri = with_database(&uri, &database);
    let mut zoho = admin_conn(&zoho_uri);
    zoho.query_drop(ZOHO_DDL).unwrap();
    zoho.query_drop(
        "INSERT INTO oauthtoken VALUES
         ('1', 'alice@example.com', '1000.A', 'cs-alice', 'rt-alice', 'at-alice', NULL, '1900000000000', NULL, 'https://www.zohoapis.com'),
         ('2', 'bob@example.com', '1000.B', 'cs-bob', 'rt-bob', NULL, NULL, NULL, NULL, NULL),
         ('3', 'eve@example.com', '1000.E', 'cs-eve', 'rt-eve', 'at-eve', NULL, 'SECRET-not-a-time', NULL, NULL)",
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cli_store = format!("sqlite:{}", dir.path().join("cli.db").display());
    let tv = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(args)
            .env("TOKENVAULT_STORE", &cli_store)
            .env(
                "TOKENVAULT_KEY",
                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
            )
            .env_remove("TOKENVAULT_PASSPHRASE")
            .output()
            .unwrap()
    };
    assert!(tv(&["init", "--key", "env"]).status.success());
    let out = tv(&["import", "--format", "zoho-mysql", &zoho_uri]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused row makes the import exit 1: {stderr}"
    );
    assert!(
        stderr.contains("read 3, inserted 2, updated 0, refused 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "a refused value in: {stderr}");
    let password = parse(&zoho_uri).password().unwrap_or_default().to_owned();
    assert!(
        !password.is_empty() && !stderr.contains(&password),
        "password in: {stderr}"
    );
    let listed = tv(&["list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    let got = tv(&["get", "1", "--field", "refresh_token"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "rt-alice\n");
}
