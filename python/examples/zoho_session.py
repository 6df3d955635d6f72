"""The Zoho CRM Python SDK with tokenvault's store, against the fake Zoho accounts server that
the tests use (python/tests/fake_zoho.py): a grant-token sign-in, a second start by user name
that needs no request, then four processes on an expired token sharing one refresh.

    python python/examples/zoho_session.py

Everything happens in a temporary directory on 127.0.0.1; nothing reaches Zoho. For a real
app, replace the Environment with the SDK's data centre (e.g. USDataCenter.PRODUCTION()) and
keep the store somewhere lasting.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fake_zoho import CLIENT_ID, CLIENT_SECRET, FakeZoho  # noqa: E402
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature  # noqa: E402

from tokenvault.zoho import TokenvaultStore  # noqa: E402


def main():
    fake = FakeZoho(refresh_delay=0.3).start()
    env = DataCenter.Environment(fake.base_url, fake.token_url, fake.base_url)
    with tempfile.TemporaryDirectory() as work:
        uri = "sqlite:" + os.path.join(work, "store", "tokens.db")
        key = os.urandom(32)  # a real app keeps its key in a secret manager, or uses a passphrase
        store = TokenvaultStore(uri, key=key, token_url=fake.token_url)

        grant = OAuthToken(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                           grant_token=fake.grant("ann@example.com"),
                           redirect_url="https://app.example.com/cb")
        Initializer.initialize(environment=env, token=grant, store=store, resource_path=work)
        user = grant.get_user_signature().get_name()
        print("1. signed in with a grant token: record %s for %s (requests: %s)"
              % (grant.get_id(), user, fake.stats()))

        again = OAuthToken(user_signature=UserSignature(user))
        before = fake.stats()
        Initializer.initialize(environment=env, token=again, store=store, resource_path=work)
        print("2. started again by user name: same token: %s, new requests: %s"
              % (again.get_access_token() == grant.get_access_token(), fake.stats() != before))

        record = store.store.find_token({"user_name": user})
        record["expiry_time"] = str(int(time.time() * 1000) - 1000)  # an hour later…
        store.store.save_token(record)
        gate = pathlib.Path(work) / "go"
        worker = HERE.parent / "tests" / "zoho_worker.py"
        procs = [subprocess.Popen([sys.executable, str(worker), fake.base_url, uri, key.hex(), user,
                                   str(gate)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
        time.sleep(2)
        gate.touch()
        tokens = {p.communicate(timeout=60)[0].strip() for p in procs}
        print("3. four processes on the expired token: %d refresh request(s), %d distinct token(s), "
              "exit codes %s" % (fake.stats()["refresh_token"], len(tokens), [p.returncode for p in procs]))

        data = b"".join(p.read_bytes() for p in pathlib.Path(work, "store").rglob("*") if p.is_file())
        secret_values = [record["refresh_token"], CLIENT_SECRET, user]
        plaintext = any(v.encode() in data for v in secret_values)
        print("4. plaintext on disk: %s" % plaintext)
        codes = [p.returncode for p in procs]
    fake.stop()
    if fake.stats()["refresh_token"] != 1 or len(tokens) != 1 or codes != [0] * 4 or plaintext:
        sys.exit("FAILED: expected one refresh, one token, four clean exits, no plaintext")


if __name__ == "__main__":
    main()
