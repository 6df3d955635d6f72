"""A fake Zoho accounts + CRM API server on 127.0.0.1 for the binding tests and examples.

It speaks what the Zoho CRM SDKs send: ``POST /oauth/v2/token`` (url-encoded as the Python
SDK posts it, or multipart/form-data as the Node.js SDK does) for the ``authorization_code``
and ``refresh_token`` grants, and, after a grant, ``GET /crm/v8/users?type=CurrentUser`` and
``GET /crm/v8/org`` with ``Authorization: Zoho-oauthtoken <access token>``.

Refresh tokens are single-use and rotate, as a strict authorization server's do: spending one
twice fails with ``invalid_code``, so a store that lets two processes refresh at once loses a
process. ``GET /__stats`` returns the request counts; ``POST /__grant?user=NAME`` issues a grant
code. Run it alone (``python fake_zoho.py``): it prints its base URL and serves until killed.
"""

import email.parser
import email.policy
import http.server
import json
import secrets
import sys
import threading
import time
import urllib.parse

CLIENT_ID = "1000.FAKECLIENT"
CLIENT_SECRET = "fake-client-secret-0123456789"
ORG_ID = "700000001"


class FakeZoho:
    """The server's state; every method holds the lock."""

    def __init__(self, refresh_delay=0.0, lifetime_seconds=3600):
        self.lock = threading.Lock()
        self.refresh_delay = refresh_delay
        self.lifetime = lifetime_seconds
        self.grants = {}  # code -> user
        self.refresh_tokens = {}  # live refresh token -> user
        self.access_tokens = {}  # access token -> (user, expiry epoch s)
        self.counts = {"authorization_code": 0, "refresh_token": 0, "refused": 0,
                       "users": 0, "org": 0, "unauthorized": 0}
        self.content_types = []
        self.refresh_agents = []  # the User-Agent of every refresh request, in order
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.base_url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.token_url = self.base_url + "/oauth/v2/token"
        self.thread = None

    # -- test-side controls ------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def grant(self, user):
        code = "1000.grant." + secrets.token_hex(8)
        with self.lock:
            self.grants[code] = user
        return code

    def issue_refresh_token(self, user):
        """A live refresh token for `user`, as if an earlier grant had issued it."""
        token = "1000.refresh." + secrets.token_hex(12)
        with self.lock:
            self.refresh_tokens[token] = user
        return token

    def stats(self):
        with self.lock:
            return dict(self.counts)

    # -- the protocol ------------------------------------------------------------------
    def token_request(self, form, content_type, user_agent=""):
        with self.lock:
            self.content_types.append(content_type.split(";")[0].strip())
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self.refuse("invalid_client")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            with self.lock:
                self.counts["authorization_code"] += 1
                user = self.grants.pop(form.get("code"), None)
            if user is None:
                return self.refuse("invalid_code")
            return 200, self.issue(user, new_refresh=True)
        if grant_type == "refresh_token":
            with self.lock:
                self.counts["refresh_token"] += 1
                self.refresh_agents.append(user_agent)
            time.sleep(self.refresh_delay)  # widens the window a racing store would lose in
            with self.lock:
                user = self.refresh_tokens.pop(form.get("refresh_token"), None)
            if user is None:
                return self.refuse("invalid_code")
            return 200, self.issue(user, new_refresh=True)
        return self.refuse("unsupported_grant_type")

    def refuse(self, error):
        with self.lock:
            self.counts["refused"] += 1
        return 400, {"error": error}

    def issue(self, user, new_refresh):
        access = "1000.access." + secrets.token_hex(12)
        answer = {"access_token": access, "api_domain": self.base_url,
                  "token_type": "Bearer", "expires_in": self.lifetime}
        with self.lock:
            self.access_tokens[access] = (user, time.time() + self.lifetime)
            if new_refresh:
                refresh = "1000.refresh." + secrets.token_hex(12)
                self.refresh_tokens[refresh] = user
                answer["refresh_token"] = refresh
        return answer

    def user_of(self, authorization):
        prefix = "Zoho-oauthtoken "
        if not authorization or not authorization.startswith(prefix):
            return None
        with self.lock:
            user, expiry = self.access_tokens.get(authorization[len(prefix):], (None, 0))
        return user if expiry > time.time() else None


def parse_form(body, content_type):
    """The fields of an url-encoded or multipart/form-data body."""
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        form = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                form[name] = part.get_payload(decode=True).decode("utf-8")
        return form
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8")).items()}


def _handler(server):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_json(self, status, value):
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length)

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            body = self.body()
            if url.path == "/oauth/v2/token":
                content_type = self.headers.get("Content-Type", "")
                form = dict(parse_form(body, content_type))
                form.update({k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()})
                self.send_json(*server.token_request(form, content_type,
                                                     self.headers.get("User-Agent", "")))
            elif url.path == "/__grant":
                user = urllib.parse.parse_qs(url.query)["user"][0]
                self.send_json(200, {"code": server.grant(user)})
            else:
                self.send_json(404, {"error": "not_found"})

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/__stats":
                return self.send_json(200, server.stats())
            if url.path not in ("/crm/v8/users", "/crm/v8/org"):
                return self.send_json(404, {"code": "INVALID_URL_PATTERN", "status": "error",
                                            "message": "Please check if the URL trying to access is a correct one", "details": {}})
            user = server.user_of(self.headers.get("Authorization"))
            if user is None:
                with server.lock:
                    server.counts["unauthorized"] += 1
                return self.send_json(401, {"code": "INVALID_TOKEN", "status": "error",
                                            "message": "invalid oauth token", "details": {}})
            kind = "users" if url.path.endswith("users") else "org"
            with server.lock:
                server.counts[kind] += 1
            if kind == "users":
                return self.send_json(200, {"users": [{"email": user, "id": "5000001",
                                                       "full_name": "Test User"}],
                                            "info": {"per_page": 200, "count": 1, "page": 1,
                                                     "more_records": False}})
            return self.send_json(200, {"org": [{"id": ORG_ID, "zgid": ORG_ID,
                                                 "company_name": "Fake Org"}]})

    return Handler


if __name__ == "__main__":
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    fake = FakeZoho(refresh_delay=delay)
    print(fake.base_url, flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
