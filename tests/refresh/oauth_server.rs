//! A local OAuth 2.0 token endpoint on 127.0.0.1 for the refresh tests: it issues rotating
//! refresh tokens, refuses a refresh token once used (`invalid_grant`), counts calls, and can
//! be made slow, malformed or refusing. Plain std HTTP/1.1, one thread per connection; it
//! stops when dropped.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Rotate: a valid refresh token gets a new access and refresh token.
    Normal,
    /// Wait this long before answering (as Normal).
    Slow(Duration),
    /// HTTP 400 `{"error":"invalid_grant"}` whatever the request.
    InvalidGrant,
    /// HTTP 200 with a body that is not JSON.
    Malformed,
    /// A hostile endpoint: this status and body, and a `Location` header if given.
    Canned {
        /// HTTP status.
        status: u16,
        /// Body, sent as is.
        body: &'static str,
        /// `Location` header (for redirects).
        location: Option<&'static str>,
    },
}

struct State {
    valid: HashSet<String>,
    issued: u64,
    mode: Mode,
}

struct Shared {
    calls: AtomicUsize,
    state: Mutex<State>,
    client: (String, String),
}

/// The running endpoint.
pub struct OAuthServer {
    /// `http://127.0.0.1:PORT/oauth/v2/token`
    pub url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OAuthServer {
    /// Starts an endpoint that accepts `refresh_token` for this client.
    pub fn start(refresh_token: &str, client_id: &str, client_secret: &str) -> OAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/oauth/v2/token", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            calls: AtomicUsize::new(0),
            state: Mutex::new(State {
                valid: HashSet::from([refresh_token.to_owned()]),
                issued: 0,
                mode: Mode::Normal,
            }),
            client: (client_id.to_owned(), client_secret.to_owned()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let shared = shared.clone();
                            std::thread::spawn(move || serve(conn, &shared));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        OAuthServer {
            url,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Refresh requests received so far (whatever the answer).
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Changes how later requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.state.lock().unwrap().mode = mode;
    }

    /// The refresh tokens it would accept now.
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        self.shared
            .state
            .lock()
            .unwrap()
            .valid
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(conn: TcpStream, shared: &Shared) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut line = String::new();
    let mut content_length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        })
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    shared.calls.fetch_add(1, Ordering::SeqCst);

    let mode = shared.state.lock().unwrap().mode;
    if let Mode::Slow(delay) = mode {
        std::thread::sleep(delay);
    }
    let mut location = None;
    let (status, answer) = match mode {
        Mode::Canned {
            status,
            body,
            location: to,
        } => {
            location = to;
            (status, body.to_owned())
        }
        Mode::InvalidGrant => (400, r#"{"error":"invalid_grant"}"#.to_owned()),
        Mode::Malformed => (200, "<html>not json</html>".to_owned()),
        Mode::Normal | Mode::Slow(_) => {
            let client_ok = get("client_id") == Some(&shared.client.0)
                && get("client_secret") == Some(&shared.client.1);
            let mut state = shared.state.lock().unwrap();
            match get("refresh_token") {
                Some(r)
                    if get("grant_type") == Some("refresh_token")
                        && client_ok
                        && state.valid.remove(r) =>
                {
                    state.issued += 1;
                    let n = state.issued;
                    state.valid.insert(format!("r-{n}"));
                    let json = format!(
                        r#"{{"access_token":"a-{n}","refresh_token":"r-{n}","expires_in":3600,"api_domain":"https://www.zohoapis.com","token_type":"Bearer"}}"#
                    );
                    (200, json)
                }
                _ => (400, r#"{"error":"invalid_grant"}"#.to_owned()),
            }
        }
    };
    let mut conn = conn;
    let reason = match status {
        200 => "OK",
        300..400 => "Found",
        _ => "Bad Request",
    };
    let location = location.map_or_else(String::new, |to| format!("Location: {to}\r\n"));
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\n{location}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}
